"""Where this user's nfteach state lives: ``$NFTEACH_CACHE``, default ``~/.cache/nfteach``.

The vm backend keeps its kernels and run directories there; a live lab's stamp records it
as the lab's owner, so ``nfteach reset --all-mine`` ends only labs started with this cache
(several users, or several courses, may run as root on one machine).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """This user's writable cache: ``$NFTEACH_CACHE``, default ``~/.cache/nfteach``."""
    return Path(os.environ.get("NFTEACH_CACHE") or Path.home() / ".cache" / "nfteach")


def owner() -> str:
    """The cache as an absolute path: what a live lab's stamp records as its owner."""
    return os.path.abspath(cache_dir())
