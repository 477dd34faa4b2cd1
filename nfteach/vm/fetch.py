"""Download Debian cloud kernels, their debug info and headers into the nfteach cache.

Everything comes from Debian's archive through ``apt-get`` with a *private* apt
configuration (its own sources list, lists and package cache under the nfteach cache),
so the host's apt setup is neither used nor changed, and bullseye works on a bookworm
host. apt verifies the signed Release files and every package's hash; we also record
the sha256 of every ``.deb`` in ``kernels/K/manifest.json``. A half-downloaded ``.deb``
stays in apt's ``partial/`` directory and apt resumes or redoes it.

Layout of ``$NFTEACH_CACHE`` (default ``~/.cache/nfteach``)::

    apt/<suite>/...              private apt state per Debian suite
    kernels/<K>/vmlinuz          the boot image
    kernels/<K>/modules/lib/modules/<release>/...   all modules (for the guest)
    kernels/<K>/debug/vmlinux, debug/<module>.ko    DWARF for drgn (netfilter only)
    kernels/<K>/headers/...      (5.10) kernel headers for bpftrace in the guest
    kernels/<K>/manifest.json    release, packages, sha256

A room (JupyterHub) shares one read-only copy of the kernels: the instructor prepares it
with ``NFTEACH_CACHE=/srv/nfteach/shared nfteach vm fetch``/``build`` and gives every
attendee ``NFTEACH_SHARED_CACHE=/srv/nfteach/shared``. A kernel whose directory there is
complete (``manifest.json``, ``vmlinuz``, ``debug/vmlinux``) is used from there and never
written; everything writable (apt state, downloads, QEMU run directories and overlays)
stays in the attendee's own ``$NFTEACH_CACHE``. See docs/workshop.md.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .mirror import debian_mirror, security_mirror

log = logging.getLogger("nfteach.vm")

Progress = Callable[[str], None]

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class KernelSpec:
    """Which Debian packages make up one bootable kernel profile."""

    name: str  # "5.10"
    suite: str  # Debian suite that serves it
    suites: tuple  # (suite, components) lines for the private sources list
    release: Optional[str]  # "5.10.0-32-cloud-amd64"; None: take the suite's current ABI
    needs_headers: bool  # no BTF usable by bpftrace: ship headers to the guest
    security: bool = False  # also <suite>-security from the security archive, if one is configured
    userland: str = "bookworm"  # Debian suite of the guest's userland (rootfs.py)


KERNELS: Dict[str, KernelSpec] = {
    # bullseye main: the newest ABI whose -dbg the pool still serves (security ABIs 404).
    "5.10": KernelSpec("5.10", "bullseye", (("bullseye", "main"),), "5.10.0-32-cloud-amd64", True),
    # bookworm: the current ABI of the point release + security, as the archive serves it.
    "6.1": KernelSpec(
        "6.1",
        "bookworm",
        (("bookworm", "main"), ("bookworm-updates", "main")),
        None,
        False,
        security=True,
    ),
    # trixie: the same, and the guest runs trixie's own userland (tools of Debian 13).
    "6.12": KernelSpec(
        "6.12",
        "trixie",
        (("trixie", "main"), ("trixie-updates", "main")),
        None,
        False,
        security=True,
        userland="trixie",
    ),
}

#: debug .ko files to extract (DWARF for drgn); matched against the module file name
NETFILTER_KO = re.compile(
    r"/(nf_[^/]*|nft_[^/]*|nfnetlink[^/]*|x_tables|xt_[^/]*|ip_tables|ip6_tables|iptable_[^/]*|"
    r"ip6table_[^/]*|ipt_[^/]*|ip6t_[^/]*|nf_tables|nf_conntrack[^/]*|nf_defrag_[^/]*|"
    r"nf_nat[^/]*|nf_reject_[^/]*|br_netfilter|ebtable[^/]*|arp_tables|arptable_[^/]*)\.ko$"
)


def cache_dir() -> Path:
    """This user's writable cache: ``$NFTEACH_CACHE``, default ``~/.cache/nfteach``."""
    from ..model.cache import cache_dir as home

    return home()


def shared_cache_dir() -> Optional[Path]:
    """The room's read-only cache ``$NFTEACH_SHARED_CACHE``, if set and not this user's own cache.

    The instructor who builds it runs with ``NFTEACH_CACHE`` pointing at the same directory:
    for them it is their writable cache, not a shared one.
    """
    env = os.environ.get("NFTEACH_SHARED_CACHE")
    if not env:
        return None
    shared = Path(env)
    try:
        if shared.resolve() == cache_dir().resolve():
            return None
    except OSError:
        pass
    return shared


#: what a fetched kernel directory holds when the fetch finished (``_fetch_kernel``)
KERNEL_FILES = ("manifest.json", "vmlinuz", "debug/vmlinux")


def shared_kernel_dir(kernel: str) -> Optional[Path]:
    """``kernels/<kernel>`` of the shared cache when it is complete, else None."""
    shared = shared_cache_dir()
    if shared is None:
        return None
    kdir = shared / "kernels" / kernel
    if all((kdir / f).is_file() for f in KERNEL_FILES) and (kdir / "modules").is_dir():
        return kdir
    return None


def kernel_dir(kernel: str) -> Path:
    """Where kernel ``kernel``'s files are: the shared cache when complete there, else ours."""
    return shared_kernel_dir(kernel) or cache_dir() / "kernels" / kernel


def _say(progress: Optional[Progress], msg: str) -> None:
    log.info("%s", msg)
    if progress:
        progress(msg)


class Apt:
    """apt-get and apt-cache with a private configuration for one Debian suite."""

    def __init__(self, spec: KernelSpec, root: Optional[Path] = None):
        self.root = (root or cache_dir() / "apt") / spec.suite
        self.spec = spec
        for d in ("lists/partial", "archives/partial", "etc/preferences.d", "etc/sources.list.d", "etc/trusted.gpg.d"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        mirror = debian_mirror()
        sources = "".join(f"deb [signed-by={KEYRING}] {mirror} {s} {c}\n" for s, c in spec.suites)
        security = security_mirror() if spec.security else None
        if security:  # the point release's kernel may be older than the security one
            sources += f"deb [signed-by={KEYRING}] {security} {spec.suite}-security main\n"
        (self.root / "etc/sources.list").write_text(sources)
        status = self.root / "status"
        if not status.exists():
            status.write_text("")

    def opts(self) -> List[str]:
        r = self.root
        return [
            "-o", f"Dir::Etc::sourcelist={r / 'etc/sources.list'}",
            "-o", f"Dir::Etc::sourceparts={r / 'etc/sources.list.d'}",
            "-o", f"Dir::Etc::preferencesparts={r / 'etc/preferences.d'}",
            "-o", f"Dir::State::Lists={r / 'lists'}",
            "-o", f"Dir::State::status={r / 'status'}",
            "-o", f"Dir::Cache={r}",
            "-o", f"Dir::Cache::archives={r / 'archives'}",
            "-o", "APT::Architecture=amd64",
            "-o", "APT::Sandbox::User=root" if os.geteuid() == 0 else "Debug::NoLocking=1",
        ]

    def update(self, progress: Optional[Progress] = None) -> None:
        lists = list((self.root / "lists").glob("*_Packages*"))
        if lists:
            return
        _say(progress, f"apt: updating package lists for {self.spec.suite}")
        subprocess.run(["apt-get", *self.opts(), "-q", "update"], check=True, stdout=subprocess.DEVNULL)

    def show(self, package: str) -> Dict[str, str]:
        out = subprocess.run(
            ["apt-cache", *self.opts(), "show", "--no-all-versions", package],
            check=True, capture_output=True, text=True,
        ).stdout
        fields: Dict[str, str] = {}
        for line in out.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, _, v = line.partition(":")
                fields.setdefault(k, v.strip())
        return fields

    def download(self, packages: List[str], dest: Path, progress: Optional[Progress] = None) -> List[Path]:
        """``apt-get download`` into ``dest``; apt checks the hashes from the signed lists."""
        dest.mkdir(parents=True, exist_ok=True)
        paths = []
        for p in packages:
            info = self.show(p)
            fname = Path(info["Filename"]).name
            path = dest / fname
            if path.exists() and path.stat().st_size == int(info["Size"]) and _sha256(path) == info["SHA256"]:
                _say(progress, f"apt: {fname} already in the cache")
                paths.append(path)
                continue
            path.unlink(missing_ok=True)  # a partial or corrupt one: redo it
            mb = int(info["Size"]) / 1e6
            _say(progress, f"apt: downloading {fname} ({mb:.0f} MB)")
            with tempfile.TemporaryDirectory(dir=dest) as tmp:
                subprocess.run(["apt-get", *self.opts(), "-q", "download", p], cwd=tmp, check=True,
                               stdout=subprocess.DEVNULL)
                got = next(Path(tmp).glob("*.deb"))
                if _sha256(got) != info["SHA256"]:
                    raise RuntimeError(f"sha256 mismatch for {got.name}")
                os.replace(got, path)
            paths.append(path)
        return paths


def _sha256(path: Path) -> str:
    """The SHA-256 of a file, read 1 MiB at a time (fetched kernels, built disks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_release(spec: KernelSpec, apt: Apt) -> str:
    if spec.release:
        return spec.release
    dep = apt.show("linux-image-cloud-amd64")["Depends"]
    # 5.10.0-32-cloud-amd64 (bullseye, bookworm), 6.12.118+deb13-cloud-amd64 (trixie)
    m = re.search(r"linux-image-(\d+\.\d+\.\d+[-+][0-9a-z]+-cloud-amd64)", dep)
    if not m:
        raise RuntimeError(f"cannot find the current cloud ABI in {dep!r}")
    return m.group(1)


def _extract(deb: Path, dest: Path, members: Optional[Callable[[str], bool]] = None) -> None:
    """``dpkg-deb -x``, or only the members ``members(name)`` keeps: one streaming pass over
    ``dpkg-deb --fsys-tarfile`` (the -dbg package is 320 MB of xz: decompress it once)."""
    import tarfile

    dest.mkdir(parents=True, exist_ok=True)
    if members is None:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        return
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=tar.stdout, mode="r|") as tf:
            for m in tf:
                if m.isfile() and ".." not in m.name.split("/") and members(m.name):
                    out = dest / m.name.lstrip("./")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    src = tf.extractfile(m)
                    with open(out, "wb") as f:
                        shutil.copyfileobj(src, f, 1 << 20)
    finally:
        tar.stdout.close()
    if tar.wait() != 0:
        raise RuntimeError(f"dpkg-deb failed on {deb}")


def fetch_kernel(kernel: str, progress: Optional[Progress] = None, keep_debs: bool = False) -> Path:
    """Download and unpack kernel ``kernel`` (a key of ``KERNELS``); return its cache directory."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; known: {', '.join(KERNELS)}")
    shared = shared_kernel_dir(kernel)
    if shared is not None:  # read-only: no lock file, nothing written
        _say(progress, f"kernel {kernel}: shared (read-only) in {shared}")
        return shared
    kdir = kernel_dir(kernel)
    kdir.parent.mkdir(parents=True, exist_ok=True)
    with open(kdir.parent / f".{kernel}.lock", "w") as lock:  # one download at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_kernel(kernel, kdir, progress, keep_debs)


def _fetch_kernel(kernel: str, kdir: Path, progress: Optional[Progress], keep_debs: bool) -> Path:
    spec = KERNELS[kernel]
    manifest = kdir / "manifest.json"
    if manifest.exists() and (kdir / "debug" / "vmlinux").exists():
        _say(progress, f"kernel {kernel}: cached in {kdir}")
        return kdir
    apt = Apt(spec)
    apt.update(progress)
    release = resolve_release(spec, apt)
    _say(progress, f"kernel {kernel}: Debian {spec.suite} linux-image-{release}")
    pkgs = [f"linux-image-{release}", f"linux-image-{release}-dbg"]
    if spec.needs_headers:
        common = release.rsplit("-", 2)[0] + "-common"  # 5.10.0-32-common
        pkgs += [f"linux-headers-{release}", f"linux-headers-{common}"]
    debs_dir = cache_dir() / "debs"
    debs = apt.download(pkgs, debs_dir, progress)
    tmp = kdir.with_name(kdir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _say(progress, f"kernel {kernel}: unpacking the kernel and its modules")
    _extract(debs[0], tmp / "modules")
    shutil.move(str(tmp / "modules" / "boot" / f"vmlinuz-{release}"), tmp / "vmlinuz")
    merged = tmp / "modules" / "usr" / "lib" / "modules"  # trixie ships modules in /usr/lib/modules
    if merged.is_dir() and not (tmp / "modules" / "lib" / "modules").exists():
        (tmp / "modules" / "lib").mkdir(exist_ok=True)
        os.replace(merged, tmp / "modules" / "lib" / "modules")
    _say(progress, f"kernel {kernel}: extracting vmlinux and netfilter debug files")
    dbg = f"./usr/lib/debug/lib/modules/{release}/"

    vmlinux = f"./usr/lib/debug/boot/vmlinux-{release}"

    def wanted(name: str) -> bool:
        return name in (vmlinux, dbg + "vmlinux") or (name.startswith(dbg) and bool(NETFILTER_KO.search(name)))

    _extract(debs[1], tmp / "dbgx", wanted)
    (tmp / "debug").mkdir()
    for f in (tmp / "dbgx").rglob("*"):
        if f.is_file():
            os.replace(f, tmp / "debug" / ("vmlinux" if f.name.startswith("vmlinux") else f.name))
    if not (tmp / "debug" / "vmlinux").exists():
        raise RuntimeError(f"no vmlinux in {debs[1].name}")
    shutil.rmtree(tmp / "dbgx")
    if spec.needs_headers:
        _say(progress, f"kernel {kernel}: unpacking kernel headers for bpftrace")
        for deb in debs[2:]:
            _extract(deb, tmp / "headers")
    entries = {d.name: {"sha256": _sha256(d), "size": d.stat().st_size} for d in debs}
    (tmp / "manifest.json").write_text(json.dumps(
        {"kernel": kernel, "suite": spec.suite, "release": release, "packages": entries}, indent=1))
    if not keep_debs:
        for d in debs[1:2]:  # the big -dbg (283 MB); the rest are small
            d.unlink(missing_ok=True)
    shutil.rmtree(kdir, ignore_errors=True)
    os.replace(tmp, kdir)
    _say(progress, f"kernel {kernel}: ready in {kdir}")
    return kdir


class DamagedManifest(dict):
    """A manifest.json that exists but cannot be read (truncated, not JSON)."""


def read_manifest(kernel: str) -> Optional[dict]:
    """The kernel's manifest; None if absent; an empty ``DamagedManifest`` if unreadable."""
    m = kernel_dir(kernel) / "manifest.json"
    if not m.exists():
        return None
    try:
        data = json.loads(m.read_text())
    except (OSError, ValueError):
        return DamagedManifest()
    return data if isinstance(data, dict) else DamagedManifest()
