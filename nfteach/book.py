"""Build the course as a static HTML site: every notebook executed, converted, and indexed.

    python -m nfteach.book [--out build/book] [--backend sim] [--kernel 5.10] [--executed DIR]

Hidden ``sanity-check`` cells keep their place but not their code; pictures stay inline SVG.
The exercises' verdicts (what the lab answered) are left out of the book unless
``--instructor``: the answers are in ``instructor/answers/``, not in the attendees' pages.
"""
from __future__ import annotations

import argparse
import copy
import html
import re
import sys
import time
from pathlib import Path
from typing import List, Optional

from .course import ARTICLE, settings
from .tour import SANITY, Step, course_notebooks, run_course, tags

DEFAULT_OUT = Path("build/book")
#: notebooks whose exercises' answers stay out of the attendees' book
EXERCISES = ("11-exercises",)
_CHECK = re.compile(r"^\s*\w+\.check\(", re.M)


def title_of(nb, fallback: str) -> str:
    """The notebook's first Markdown heading (without the #)."""
    for c in nb.cells:
        if c.cell_type == "markdown":
            for line in c.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def to_html(nb) -> str:
    """One notebook as a standalone HTML page (inline SVG, hidden sanity-check code)."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = {SANITY}
    cfg.HTMLExporter.preprocessors = ["nbconvert.preprocessors.TagRemovePreprocessor"]
    body, _ = HTMLExporter(config=cfg).from_notebook_node(nb)
    return body


def hide_answers(nb):
    """A copy of ``nb`` without the outputs of its ``q.check(...)`` cells (the lab's answers)."""
    import nbformat

    nb = copy.deepcopy(nb)
    for c in nb.cells:
        if c.cell_type == "code" and _CHECK.search(c.source):
            c.outputs = [nbformat.v4.new_output(
                "stream", name="stdout", text="(run this cell in the notebook to see what the lab answers)\n")]
    return nb


def index_html(entries: List[tuple], backend: str, kernel: Optional[str]) -> str:
    items = "\n".join(
        f'<li><a href="{html.escape(href)}">{html.escape(title)}</a>'
        f'{"" if ok else " <b>(did not run to the end)</b>"}</li>'
        for href, title, ok in entries)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nfteach — the course</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto;line-height:1.5}}</style></head>
<body><h1>nfteach — Conntrack and Netfilter hooks, hands on</h1>
<p>A course that follows <a href="{ARTICLE}">“Conntrack turns a blind eye to dropped SYNs”</a>
step by step. These pages were executed on the <code>{html.escape(backend)}</code> backend, kernel
<code>{html.escape(str(kernel or 'this machine'))}</code>, on {time.strftime('%Y-%m-%d')}.</p>
<ol start="0">
{items}
</ol></body></html>
"""


def build(out: Path = DEFAULT_OUT, backend: Optional[str] = None, kernel: Optional[str] = None,
          steps: Optional[List[Step]] = None, executed: Optional[Path] = None, report=None,
          instructor: bool = False) -> Path:
    """Write ``out/index.html`` and one page per notebook; returns the index path.

    ``instructor=False`` (the attendees' book) leaves out the exercises' verdicts.

    ``steps`` (from :func:`nfteach.tour.run_course`) or ``executed`` (a directory of executed
    notebooks) skip running the course again.
    """
    import nbformat

    backend, kernel = settings(backend, kernel)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if steps is None and executed is not None:
        steps = [Step(p, ok=True, nb=nbformat.read(str(p), as_version=4)) for p in course_notebooks(executed)]
    if steps is None:
        steps = run_course(backend, kernel, report=report)
    entries = []
    for s in steps:
        page = f"{s.name}.html"
        nb = s.nb if instructor or s.name not in EXERCISES else hide_answers(s.nb)
        (out / page).write_text(to_html(nb), encoding="utf-8")
        entries.append((page, title_of(s.nb, s.name), s.ok))
    index = out / "index.html"
    index.write_text(index_html(entries, backend, kernel), encoding="utf-8")
    return index


def hidden_sanity_cells(nb) -> int:
    return sum(c.cell_type == "code" and SANITY in tags(c) for c in nb.cells)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nfteach.book", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--backend", "-b", default=None)
    ap.add_argument("--kernel", "-k", default=None)
    ap.add_argument("--executed", type=Path, default=None, help="use already executed notebooks from DIR")
    ap.add_argument("--instructor", action="store_true", help="keep the exercises' verdicts (the answers)")
    args = ap.parse_args(argv)
    steps = None
    if args.executed is None:
        steps = run_course(args.backend, args.kernel, report=lambda s: print(s.line(), flush=True))
    index = build(args.out, args.backend, args.kernel, steps=steps, executed=args.executed,
                  instructor=args.instructor)
    print(f"book: {index}")
    return 0 if steps is None or all(s.ok for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
