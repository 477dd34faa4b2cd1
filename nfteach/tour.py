"""``nfteach tour``: run the whole course headless, one line per notebook.

    nfteach tour [--backend B] [--kernel K] [--notebooks DIR] [--out DIR] [--timeout S]

Each notebook runs top to bottom in a fresh Jupyter kernel (nbclient) with
``NFTEACH_BACKEND``/``NFTEACH_KERNEL`` set, so every notebook's first cell opens a lab on the
chosen backend. Exit status 0 when every notebook ran and every ``sanity-check`` cell passed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

from .course import ENV_BACKEND, ENV_KERNEL, settings

SANITY = "sanity-check"
SKIP_TAGS = {"vm-only": "vm", "live-only": "live"}


def notebooks_dir() -> Path:
    """The course's notebooks: ``$NFTEACH_NOTEBOOKS``, else ``notebooks/`` of this checkout."""
    env = os.environ.get("NFTEACH_NOTEBOOKS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent / "notebooks"
    return here if here.is_dir() else Path.cwd() / "notebooks"


def course_notebooks(directory: Optional[Path] = None) -> List[Path]:
    """``NN-title.ipynb`` files, in course order."""
    d = Path(directory) if directory else notebooks_dir()
    return sorted(p for p in d.glob("[0-9][0-9]-*.ipynb"))


def tags(cell) -> List[str]:
    return list(cell.get("metadata", {}).get("tags", []))


@dataclass
class Step:
    """One notebook of the course, after running it."""

    path: Path
    ok: bool = False
    seconds: float = 0.0
    cells: int = 0
    sanity: int = 0
    sanity_ran: int = 0
    skipped: List[str] = field(default_factory=list)   # tagged cells that explained themselves
    error: str = ""
    detail: str = ""     # the failing cell's whole error value (for reports; capped)
    nb: object = None

    @property
    def name(self) -> str:
        return self.path.stem

    def line(self) -> str:
        mark = "✔" if self.ok else "✘"
        what = f"{self.cells} cells, {self.sanity_ran}/{self.sanity} sanity checks"
        if self.skipped:
            what += f", {len(self.skipped)} explained ({', '.join(sorted(set(self.skipped)))})"
        tail = f" — {self.error}" if self.error else ""
        return f"{mark} {self.name:28} {self.seconds:5.1f} s  {what}{tail}"


@contextlib.contextmanager
def _env(backend: str, kernel: Optional[str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (ENV_BACKEND, ENV_KERNEL)}
    os.environ[ENV_BACKEND] = backend
    if kernel:
        os.environ[ENV_KERNEL] = kernel
    else:
        os.environ.pop(ENV_KERNEL, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _first_error_line(exc: BaseException) -> str:
    text = getattr(exc, "evalue", None) or str(exc)
    ename = getattr(exc, "ename", None) or type(exc).__name__
    lines = [ln for ln in str(text).splitlines() if ln.strip()]
    return f"{ename}: {lines[-1][:160] if lines else ''}"


def _timeout_line(code: list, timeout: int) -> str:
    """Which cell ran out of time: the last one that started (nbclient numbers it on start)."""
    started = [i for i, c in enumerate(code) if c.get("execution_count") is not None]
    if not started:
        return f"a cell did not finish within {timeout} s"
    i = started[-1]
    first = next((ln.strip() for ln in code[i].source.splitlines() if ln.strip()), "")
    return f"code cell {i + 1} did not finish within {timeout} s: {first[:100]}"


def run_notebook(path: Path, backend: str = "sim", kernel: Optional[str] = None,
                 timeout: int = 600) -> Step:
    """Execute one notebook in a fresh kernel; never raises for a failing cell."""
    import nbformat
    from nbclient import NotebookClient

    step = Step(Path(path))
    nb = nbformat.read(str(path), as_version=4)
    step.nb = nb
    code = [c for c in nb.cells if c.cell_type == "code"]
    step.cells = len(code)
    step.sanity = sum(SANITY in tags(c) for c in code)
    start = time.monotonic()
    with _env(backend, kernel):
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                # the kernel's own start-up warnings are not the course's output
                                extra_arguments=["--IPKernelApp.log_level=ERROR"],
                                resources={"metadata": {"path": str(Path(path).parent)}})
        try:
            client.execute()
            step.ok = True
        except Exception as e:  # noqa: BLE001 - a failing cell is the step's outcome
            step.error = _first_error_line(e)
            step.detail = str(getattr(e, "evalue", None) or e)[:6000]
            if type(e).__name__ == "CellTimeoutError":
                step.error = _timeout_line(code, timeout)
    step.seconds = time.monotonic() - start
    step.sanity_ran = sum(SANITY in tags(c) and c.get("execution_count") is not None
                          and not any(o.get("output_type") == "error" for o in c.get("outputs", []))
                          for c in code)
    for c in code:
        for tag, needs in SKIP_TAGS.items():
            if tag in tags(c) and backend != needs:
                step.skipped.append(tag)
    return step


def run_course(backend: Optional[str] = None, kernel: Optional[str] = None,
               directory: Optional[Path] = None, out: Optional[Path] = None,
               timeout: int = 600, report=None) -> List[Step]:
    """Run every notebook; ``report(step)`` is called after each one (e.g. to print its line)."""
    import nbformat

    backend, kernel = settings(backend, kernel)
    steps = []
    for path in course_notebooks(directory):
        step = run_notebook(path, backend, kernel, timeout)
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            nbformat.write(step.nb, str(Path(out) / path.name))
        steps.append(step)
        if report is not None:
            report(step)
    return steps


def _run(args) -> int:
    backend, kernel = settings(args.backend, args.kernel)
    nbs = course_notebooks(args.notebooks)
    if not nbs:
        print(f"nfteach tour: no NN-*.ipynb notebooks in {args.notebooks or notebooks_dir()}", file=sys.stderr)
        return 2
    print(f"# nfteach tour: {len(nbs)} notebooks on backend {backend}, kernel {kernel or 'this machine'}")
    t0 = time.monotonic()
    steps = run_course(backend, kernel, args.notebooks, args.out, args.timeout,
                       report=lambda s: print(s.line(), flush=True))
    failed = [s for s in steps if not s.ok or s.sanity_ran != s.sanity]
    print(f"# {len(steps) - len(failed)}/{len(steps)} notebooks ok in {time.monotonic() - t0:.1f} s")
    return 1 if failed else 0


def add_subcommands(subparsers) -> None:
    """Add ``tour`` to the ``nfteach`` command line."""
    p = subparsers.add_parser("tour", help="run the whole course (every notebook) headless")
    p.add_argument("--backend", "-b", default=None, help=f"sim (default), live or vm; or ${ENV_BACKEND}")
    p.add_argument("--kernel", "-k", default=None, help=f"5.10 (default), 6.1, 6.12, 6.18; or ${ENV_KERNEL}")
    p.add_argument("--notebooks", type=Path, default=None, help="directory of NN-*.ipynb (default: notebooks/)")
    p.add_argument("--out", type=Path, default=None, help="write the executed notebooks here")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    p.set_defaults(func=_run)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="nfteach")
    add_subcommands(ap.add_subparsers(dest="cmd", required=True))
    args = ap.parse_args(["tour", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
