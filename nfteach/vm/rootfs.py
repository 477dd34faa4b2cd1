"""The guest's userland: a Debian minbase tree per suite, shared by the kernels of that suite.

A kernel's ``KernelSpec.userland`` names the suite: bookworm for 5.10 and 6.1, trixie for
6.12 (Debian 13's own conntrack-tools, nftables, iptables, bpftrace). ``debootstrap``
needs root (it chroots to configure packages); the result is kept in the cache as
``rootfs/<suite>/`` and reused for every kernel's disk of that suite. The guest's
init, agent and session scripts (``nfteach/vm/guest/``) are copied in when a disk is
built, so changing them does not need a new debootstrap.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from .fetch import Progress, _say, cache_dir
from .mirror import debian_mirror

log = logging.getLogger("nfteach.vm")

SUITE = "bookworm"  # the default userland
PACKAGES = (
    "python3", "nftables", "iptables", "conntrack", "bpftrace", "iproute2", "netcat-openbsd",
    "trace-cmd", "kmod", "procps",
)


def rootfs_dir(suite: str = SUITE) -> Path:
    return cache_dir() / "rootfs" / suite


def build_rootfs(progress: Optional[Progress] = None, force: bool = False, suite: str = SUITE) -> Path:
    """debootstrap the shared userland of ``suite`` once; return its directory."""
    dest = rootfs_dir(suite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{suite}.lock", "w") as lock:  # one debootstrap at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_rootfs(dest, progress, force, suite)


def _build_rootfs(dest: Path, progress: Optional[Progress], force: bool, suite: str) -> Path:
    stamp = dest / ".nfteach-rootfs-ok"
    if stamp.exists() and not force:
        _say(progress, f"rootfs: cached in {dest}")
        return dest
    if os.geteuid() != 0:
        raise PermissionError("building the guest userland runs debootstrap, which needs root")
    if not shutil.which("debootstrap"):
        raise FileNotFoundError("debootstrap not found: apt-get install debootstrap")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _say(progress, f"rootfs: debootstrap --variant=minbase {suite} (about a minute)")
    with open(tmp.with_suffix(".log"), "w") as logf:
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(tmp), debian_mirror()],
            check=True, stdout=logf, stderr=subprocess.STDOUT,
        )
    _finish(tmp, dest, progress, suite)
    return dest


def _finish(tmp: Path, dest: Path, progress: Optional[Progress], suite: str = SUITE) -> None:
    _say(progress, "rootfs: trimming apt caches and docs")
    for d in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        p = tmp / d
        if p.is_dir():
            for child in p.iterdir():
                if child.is_symlink() or child.is_file():
                    child.unlink()
                elif child.is_dir() and child.name != "partial":
                    shutil.rmtree(child)
    (tmp / "etc/hostname").write_text("vm\n")
    (tmp / "etc/hosts").write_text("127.0.0.1 localhost\n192.168.122.204 vm\n192.168.122.1 host\n")
    # iptables in bookworm defaults to the nft backend, as Debian ships it; keep it so.
    stamp_tmp = tmp / ".nfteach-rootfs-ok"
    stamp_tmp.write_text(suite + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    _say(progress, f"rootfs: ready in {dest}")
