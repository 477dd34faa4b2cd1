"""The guest's userland: a Debian bookworm minbase tree, shared by every kernel.

``debootstrap`` needs root (it chroots to configure packages); the result is kept in
the cache as ``rootfs/bookworm/`` and reused for every kernel's disk. The guest's
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

SUITE = "bookworm"
PACKAGES = (
    "python3", "nftables", "iptables", "conntrack", "bpftrace", "iproute2", "netcat-openbsd",
    "trace-cmd", "kmod", "procps",
)


def rootfs_dir() -> Path:
    return cache_dir() / "rootfs" / SUITE


def build_rootfs(progress: Optional[Progress] = None, force: bool = False) -> Path:
    """debootstrap the shared userland once; return its directory."""
    dest = rootfs_dir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{SUITE}.lock", "w") as lock:  # one debootstrap at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_rootfs(dest, progress, force)


def _build_rootfs(dest: Path, progress: Optional[Progress], force: bool) -> Path:
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
    _say(progress, f"rootfs: debootstrap --variant=minbase {SUITE} (about a minute)")
    with open(tmp.with_suffix(".log"), "w") as logf:
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp), debian_mirror()],
            check=True, stdout=logf, stderr=subprocess.STDOUT,
        )
    _finish(tmp, dest, progress)
    return dest


def _finish(tmp: Path, dest: Path, progress: Optional[Progress]) -> None:
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
    stamp_tmp.write_text(SUITE + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    _say(progress, f"rootfs: ready in {dest}")
