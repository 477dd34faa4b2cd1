"""A private nfteach cache for vm fault tests: never the real one.

``private_cache(tmp, kernel)`` makes ``tmp/cache`` with ``kernels/<K>`` holding *symlinks*
to the real cache's read-only files, the rootfs trees as hard links (vmlinuz, initrd, disk image, debug files), except the
files a test is going to damage, which are *copied*. Point ``NFTEACH_CACHE`` at it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Optional


def real_cache() -> Path:
    return Path(os.environ.get("NFTEACH_REAL_CACHE") or Path.home() / ".cache" / "nfteach")


def why_no_vm(kernel: str) -> Optional[str]:
    from nfteach.vm.disk import image_version

    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed"
    img = real_cache() / "kernels" / kernel / "image"
    if not (img / "version").exists():
        return f"no cached vm kernel {kernel} in {real_cache()} (run `nfteach vm fetch --kernel {kernel}`)"
    if (img / "version").read_text().strip() != image_version():
        return f"the cached {kernel} image is out of date (run `nfteach vm build --kernel {kernel}`)"
    return None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def private_cache(tmp: Path, kernel: str, copy: Iterable[str] = ()) -> Path:
    """``copy``: paths relative to the cache root that are copied instead of linked."""
    src, dst = real_cache(), tmp / "cache"
    copy = set(copy)
    for top in ("kernels/" + kernel, "debs", "rootfs"):
        s = src / top
        if not s.exists():
            continue
        for path in [s] if s.is_file() else sorted(s.rglob("*")):
            rel = path.relative_to(src)
            out = dst / rel
            if top == "rootfs" and len(rel.parts) > 2:
                continue  # the rootfs tree: link its top-level entries only
            if path.is_dir() and not path.is_symlink():
                if top == "rootfs" and len(rel.parts) == 2:
                    # a tree of hard links, not a link to the tree: an image rebuilt here
                    # (re)moves files of its own rootfs, never the real cache's
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copytree(path, out, symlinks=True, copy_function=_link_or_copy)
                else:
                    out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if str(rel) in copy:
                shutil.copy2(path, out)
            else:
                out.symlink_to(path)
    return dst
