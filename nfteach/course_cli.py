"""``nfteach course [DIR]``: the course without a clone.

``pip install "nfteach[course]"`` brings the notebooks inside the package; this command
copies them into DIR (default ``./nfteach-course``) and opens JupyterLab there. A notebook
already in DIR is never overwritten (it may hold the learner's edits): the command says
which ones it kept.
"""
from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

DEFAULT_DIR = "nfteach-course"


def notebooks_source() -> Path:
    """Where this nfteach's notebooks are: inside the installed package, or the checkout's."""
    here = Path(__file__).resolve().parent
    for d in (here / "notebooks", here.parent / "notebooks"):
        if any(d.glob("*.ipynb")):
            return d
    raise FileNotFoundError("this nfteach has no notebooks (reinstall: pip install 'nfteach[course]')")


def copy_course(dest: Path) -> Tuple[List[str], List[str]]:
    """Copy every notebook missing from ``dest``; (copied, kept) file names."""
    src = notebooks_source()
    dest.mkdir(parents=True, exist_ok=True)
    copied, kept = [], []
    for nb in sorted(src.glob("*.ipynb")):
        target = dest / nb.name
        if target.exists():
            if not filecmp.cmp(nb, target, shallow=False):
                kept.append(nb.name)
            continue
        shutil.copyfile(nb, target)
        copied.append(nb.name)
    return copied, kept


def _run(args) -> int:
    dest = Path(args.dir).expanduser()
    if dest.exists() and not dest.is_dir():
        print(f"nfteach: {dest} exists and is not a directory", file=sys.stderr)
        return 2
    try:
        copied, kept = copy_course(dest)
    except OSError as e:
        print(f"nfteach: cannot copy the course into {dest}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"nfteach: course in {dest.resolve()}: {len(copied)} notebook(s) copied"
          + (f", {len(kept)} kept with your edits ({', '.join(kept)})" if kept else ""))
    if args.no_open:
        return 0
    cmd = [sys.executable, "-m", "jupyterlab", "00-setup.ipynb"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        print("nfteach: JupyterLab is not installed: pip install 'nfteach[course]' "
              "(or open the notebooks with any Jupyter)", file=sys.stderr)
        return 2
    return subprocess.call(cmd, cwd=dest)


def add_subcommands(sub) -> None:
    p = sub.add_parser("course", help="copy the course's notebooks into DIR and open JupyterLab there")
    p.add_argument("dir", nargs="?", default=DEFAULT_DIR, help=f"where (default ./{DEFAULT_DIR})")
    p.add_argument("--no-open", "--copy-only", dest="no_open", action="store_true",
                   help="copy only, do not start JupyterLab")
    p.set_defaults(func=_run)
