"""Build one kernel's boot files: a tiny initramfs and an ext4 disk image, without mounting.

* ``initrd.gz``: Debian's static busybox plus ``virtio_pci``/``virtio_blk`` and their
  dependencies (the cloud kernel has virtio as modules); it mounts ``/dev/vda`` and
  ``switch_root``s into it.
* ``disk.img``: the shared bookworm userland (``rootfs.py``) + this kernel's modules
  (+ headers for bpftrace on 5.10) + the guest agent, written with ``mke2fs -d``.

Each VM boots the image with ``snapshot=on``: its writes go to a temporary overlay in
its own run directory, so the image stays read-only and VMs never share a disk.

With ``NFTEACH_SHARED_CACHE`` (a room's read-only cache, see ``fetch.py``) a kernel found
complete there boots that cache's ``image/`` as it is: booting only reads it
(``check_image``), and a user never rebuilds it — a missing, stale or damaged shared image
is a ``SharedCacheError`` that says what the instructor runs.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Optional

from .fetch import (
    KERNELS,
    Progress,
    _say,
    _sha256,
    fetch_kernel,
    kernel_dir,
    read_manifest,
    shared_kernel_dir,
)
from .rootfs import build_rootfs, rootfs_dir

log = logging.getLogger("nfteach.vm")

GUEST_DIR = Path(__file__).with_name("guest")
DISK_SIZE = "2560M"
#: bump when the disk layout or the guest scripts change, so cached disks are rebuilt
DISK_VERSION = "6"

INITRAMFS_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /mods/$m 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
mkdir -p /newroot
mount -t ext4 /dev/vda /newroot || { echo "nfteach: cannot mount /dev/vda"; poweroff -f; }
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /usr/sbin/nfteach-init
"""

GUEST_INIT = """#!/bin/sh
# PID 1 of the nfteach guest: the lab's two machines, the tcp/22 session, the agent.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mkdir -p /dev/pts /dev/shm /run/netns
mount -t devpts devpts /dev/pts
dmesg -n 1
hostname vm
modprobe qemu_fw_cfg
modprobe veth
ip link set lo up
ip netns add host
ip link add eth0 type veth peer name eth0 netns host
ip addr add 192.168.122.204/24 dev eth0
ip link set eth0 up
ip -n host link set lo up
ip -n host addr add 192.168.122.1/24 dev eth0
ip -n host link set eth0 up
python3 /usr/lib/nfteach/session.py server </dev/null >/run/session-server.log 2>&1 &
i=0
while [ ! -e /run/nfteach-server.ready ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
ip netns exec host python3 /usr/lib/nfteach/session.py client </dev/null >/run/session-client.log 2>&1 &
i=0
while [ ! -S /run/nfteach-session.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
while :; do
  python3 /usr/lib/nfteach/agent.py /dev/ttyS0
  sleep 1
done
"""


def image_version() -> str:
    """Changes whenever the guest scripts or the layout change: cached disks are rebuilt."""
    h = hashlib.sha256((DISK_VERSION + INITRAMFS_INIT + GUEST_INIT).encode())
    for name in ("agent.py", "session.py"):
        h.update((GUEST_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def image_dir(kernel: str) -> Path:
    """``kernels/<kernel>/image`` of the shared cache when the kernel is shared, else of ours."""
    return kernel_dir(kernel) / "image"


class SharedCacheError(PermissionError):
    """The shared (read-only) cache holds the kernel but not a usable image; users never build it."""


def _shared_image(kernel: str, kdir: Path, progress: Optional[Progress], force: bool) -> Path:
    """The shared cache's image of ``kernel`` if it is built, current and whole; else raise."""
    out = kdir / "image"
    stamp = out / "version"
    problem = None
    if force:
        problem = "a rebuild was asked for"
    elif not stamp.is_file():
        problem = "it has no built image"
    elif stamp.read_text().strip() != image_version():
        problem = (f"its image was built by another nfteach version "
                   f"(image {stamp.read_text().strip()}, this nfteach expects {image_version()})")
    elif not (out / INTEGRITY).is_file():
        problem = f"its image has no {INTEGRITY}"
    else:
        problem = check_image(out)
    if problem:
        root = kdir.parent.parent
        raise SharedCacheError(
            f"kernel {kernel}: the shared cache {root} (NFTEACH_SHARED_CACHE) is read-only here and "
            f"{problem}; the instructor rebuilds it with "
            f"`NFTEACH_CACHE={root} nfteach vm build --kernel {kernel} --force`")
    _say(progress, f"image {kernel}: shared (read-only) in {out}")
    return out


def _initramfs(kdir: Path, release: str, out: Path) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    subprocess.run(["depmod", "-b", str(kdir / "modules"), release], check=True)
    deps = subprocess.run(
        ["modprobe", "-d", str(kdir / "modules"), "-S", release, "--show-depends",
         "-a", "virtio_pci", "virtio_blk"],
        check=True, capture_output=True, text=True,
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for d in ("bin", "proc", "sys", "dev", "mods", "newroot"):
            (t / d).mkdir()
        shutil.copy2(busybox, t / "bin" / "busybox")
        order = []
        for line in deps.splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod":
                ko = Path(parts[1])
                name = ko.name
                if name not in order:
                    shutil.copy2(ko, t / "mods" / name)
                    order.append(name)
        (t / "modules.order").write_text("\n".join(order) + "\n")
        init = t / "init"
        init.write_text(INITRAMFS_INIT)
        init.chmod(0o755)
        names = subprocess.run(["find", "."], cwd=t, check=True, capture_output=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=t, input=names,
                              check=True, capture_output=True).stdout
        gz = subprocess.run(["gzip", "-9"], input=cpio, check=True, capture_output=True).stdout
        out.write_bytes(gz)


def build_image(kernel: str, progress: Optional[Progress] = None, force: bool = False) -> Path:
    """Make sure kernel ``kernel`` has ``image/{vmlinuz,initrd.gz,disk.img}``; return the dir.

    A kernel of the shared cache is never built here: its image is checked and returned,
    or ``SharedCacheError`` says what is wrong with it.
    """
    shared = shared_kernel_dir(kernel)
    if shared is not None:
        return _shared_image(kernel, shared, progress, force)
    # debootstrap the userland while the kernel downloads and unpacks (they are independent;
    # _build_image then finds the rootfs built, or waits on its lock, or reports its error)
    userland = None
    if os.geteuid() == 0 and not (rootfs_dir(KERNELS[kernel].userland) / ".nfteach-rootfs-ok").exists():
        userland = threading.Thread(target=_quietly, args=(build_rootfs, progress, KERNELS[kernel].userland),
                                    daemon=True)
        userland.start()
    try:
        kdir = fetch_kernel(kernel, progress)
    finally:
        if userland is not None:
            userland.join()
    out = image_dir(kernel)
    kdir.mkdir(parents=True, exist_ok=True)
    with open(kdir / ".image.lock", "w") as lock:  # one builder at a time per kernel
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_image(kernel, kdir, out, progress, force)


def _quietly(build, progress, suite) -> None:
    try:
        build(progress, suite=suite)
    except Exception as e:  # noqa: BLE001 - _build_image builds it again and reports the error
        log.info("rootfs %s: %s", suite, e)


def _build_image(kernel: str, kdir: Path, out: Path, progress: Optional[Progress], force: bool) -> Path:
    stamp = out / "version"
    if stamp.exists() and stamp.read_text().strip() == image_version() and not force \
            and (out / INTEGRITY).exists() and check_image(out) is None:
        _say(progress, f"image {kernel}: cached in {out}")
        return out
    release = read_manifest(kernel)["release"]
    rootfs = build_rootfs(progress, suite=KERNELS[kernel].userland)
    tmp = out.with_name("image.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _say(progress, f"image {kernel}: initramfs with busybox and virtio modules")
    _initramfs(kdir, release, tmp / "initrd.gz")
    staging = tmp / "root"
    _say(progress, f"image {kernel}: staging the userland (hard links), modules, agent")
    subprocess.run(["cp", "-al", str(rootfs), str(staging)], check=True)
    (staging / ".nfteach-rootfs-ok").unlink(missing_ok=True)
    mods = staging / "usr" / "lib" / "modules"
    mods.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(kdir / "modules" / "lib" / "modules" / release), str(mods)], check=True)
    if (kdir / "headers").is_dir():
        subprocess.run(["cp", "-a", str(kdir / "headers" / "usr" / "src"), str(staging / "usr")], check=True)
        for name in ("build", "source"):  # bpftrace reads both (source: the -common headers)
            src = kdir / "headers" / "lib" / "modules" / release / name
            if src.is_symlink():
                link = mods / release / name
                link.unlink(missing_ok=True)
                link.symlink_to(os.readlink(src))
    nf = staging / "usr" / "lib" / "nfteach"
    nf.mkdir(parents=True, exist_ok=True)
    for name in ("agent.py", "session.py"):
        shutil.copy(GUEST_DIR / name, nf / name)
    init = staging / "usr" / "sbin" / "nfteach-init"
    init.write_text(GUEST_INIT)
    init.chmod(0o755)
    subprocess.run(["depmod", "-b", str(staging), release], check=True)
    _say(progress, f"image {kernel}: mke2fs -t ext4 -d (no mount)")
    # its notes ("Creating regular file ...") are kept off stdout: that is the lab's output
    mk = subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "nfteach", "-d", str(staging), str(tmp / "disk.img"), DISK_SIZE],
        capture_output=True, text=True, errors="replace",
    )
    if mk.returncode:
        raise RuntimeError(f"mke2fs failed: {(mk.stderr or mk.stdout).strip().splitlines()[-1:]}")
    shutil.rmtree(staging)
    shutil.copy2(kdir / "vmlinuz", tmp / "vmlinuz")
    _write_integrity(tmp)
    (tmp / "version").write_text(image_version() + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    _say(progress, f"image {kernel}: ready in {out}")
    return out


INTEGRITY = "integrity.json"


def _write_integrity(img: Path) -> None:
    """Sizes (and checksums of the small files) of a built image, checked before each boot."""
    import json

    rec = {}
    for name in ("vmlinuz", "initrd.gz", "disk.img"):
        p = img / name
        rec[name] = {"size": p.stat().st_size}
        if name != "disk.img":  # the disk is 2.5 GB sparse: its size is the check
            rec[name]["sha256"] = _sha256(p)
    (img / INTEGRITY).write_text(json.dumps(rec, indent=1) + "\n")


def check_image(img: Path) -> Optional[str]:
    """None if the built image is whole, else a one-line description of what is damaged.

    Only reads: it runs before every boot, also on a shared read-only image.
    """
    import json

    rec_path = img / INTEGRITY
    if not rec_path.exists():
        return None  # built before integrity records existed; the boot itself will tell
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, ValueError):
        return f"{rec_path} is damaged"
    for name, want in rec.items():
        p = img / name
        if not p.exists():
            return f"{p} is missing"
        if p.stat().st_size != want.get("size"):
            return f"{p} is damaged (size {p.stat().st_size}, expected {want.get('size')})"
        if "sha256" in want and _sha256(p) != want["sha256"]:
            return f"{p} is damaged (checksum differs)"
    return None
