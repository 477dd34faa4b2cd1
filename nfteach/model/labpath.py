"""Paths of files on a lab machine (``Lab.write_file``): absolute, no ``..``, no NUL.

Every backend keeps such a file inside the lab (the live backend's files directory, the
vm backend's run directory and guest), so a path is checked once, here, the same way.

>>> lab_path("/vagrant/tools/nf_hooks.bt")
'/vagrant/tools/nf_hooks.bt'
>>> lab_path("/vagrant/../../etc/passwd")
Traceback (most recent call last):
...
nfteach.model.errors.LabError: write_file: give an absolute path without '..', not '/vagrant/../../etc/passwd'
"""
from __future__ import annotations

from pathlib import Path

from .errors import LabError


def lab_path(path: str) -> str:
    """``path`` when it is an absolute path without ``..`` (and no NUL), else a LabError."""
    if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/") or "\x00" in path:
        shown = path if isinstance(path, str) and len(path) <= 80 else f"{str(path)[:77]}..."
        raise LabError(f"write_file: give an absolute path without '..', not {shown!r}", token=str(path)[:40])
    return path


def inside(base: Path, path: str) -> Path:
    """``base / path`` (``path`` checked by :func:`lab_path`), proven to stay under ``base``."""
    dest = (base / lab_path(path).lstrip("/")).resolve()
    if not dest.is_relative_to(base.resolve()):
        raise LabError(f"write_file: {path!r} leaves the lab's directory", token=path)
    return dest
