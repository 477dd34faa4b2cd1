"""Pictures in the notebook: every SVG fits the notebook's column (scaled down when wider,
click to see it full size), and a fallback hook chain for when Graphviz is missing.

>>> html_ = fit('<svg width="1800pt" height="90pt" viewBox="0 0 1800 90"></svg>')
>>> 'max-width:100%' in html_ and 'click the picture' in html_
True
"""
from __future__ import annotations

import html
import itertools
import re
from typing import Callable, Sequence

from .parsers import nf_hooks
from .settings import Notice

#: the widest picture shown at full size: JupyterLab's output column at 1400 px is ~900 px
COLUMN_PX = 880
_SVG_TAG = re.compile(r"<svg\b([^>]*)>", re.S)
_WIDTH = re.compile(r'\bwidth="([\d.]+)(pt|px)?"')
_ids = itertools.count(1)
_STYLE = ("<style>.nfteach-fit svg{max-width:100%!important;height:auto!important}"
          ".nfteach-fit label{display:block;cursor:zoom-in}"
          ".nfteach-fit input:checked~label{overflow-x:auto;cursor:zoom-out}"
          ".nfteach-fit input:checked~label svg{max-width:none!important}"
          ".nfteach-fit .nfteach-hint{font:11px sans-serif;color:#6b7280}</style>")


def width_px(svg: str) -> float:
    """The width an SVG asks for, in CSS pixels (Graphviz writes points: 1 pt = 4/3 px)."""
    m = _SVG_TAG.search(svg)
    w = _WIDTH.search(m.group(1)) if m else None
    if not w:
        return 0.0
    return float(w.group(1)) * (4 / 3 if w.group(2) in (None, "pt") else 1)


def fit(svg: str) -> str:
    """HTML that shows ``svg`` no wider than the column; a picture scaled down gets a
    click-to-enlarge (a CSS toggle: no script) and says so."""
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    svg = _SVG_TAG.sub(lambda m: f'<svg{m.group(1)} style="max-width:100%;height:auto">', svg, count=1)
    n = next(_ids)
    wide = width_px(svg) > COLUMN_PX
    hint = ('<div class="nfteach-hint">scaled to fit the column: click the picture to see it full size</div>'
            if wide else "")
    return (f'<div class="nfteach-fit" style="max-width:100%">{_STYLE}'
            f'<input type="checkbox" id="nfteach-fit-{n}" style="display:none">'
            f'<label for="nfteach-fit-{n}">{svg}</label>{hint}</div>')


class Picture:
    """A picture (anything with ``_repr_svg_``) shown to fit the column; ``highlight``
    names callbacks of a hook chain to draw with an amber border (``"LOCAL_IN:ipv4_confirm"``)."""

    def __init__(self, obj, highlight: Sequence[str] = ()):
        self.obj = obj
        if highlight and getattr(obj, "lanes", None) is not None:
            from ..render.graphs import hooks_graph, to_svg

            self.svg = to_svg(hooks_graph(obj, highlight=tuple(highlight)))
        else:
            self.svg = obj._repr_svg_()   # render now: a missing `dot` shows up here, not later

    def _repr_html_(self) -> str:
        return fit(self.svg)

    def __str__(self) -> str:
        return str(self.obj)

    def __repr__(self) -> str:
        return f"<picture: {self.obj.__class__.__name__}>"

    def __getattr__(self, name):
        if name.startswith("_repr") or name == "obj":
            raise AttributeError(name)
        return getattr(self.obj, name)


class HookChain:
    """The callbacks of one hook as a column of boxes, in run order (an SVG).

    Used when ``nfteach.render.graphs`` is not installed; conntrack's callbacks are blue.
    """

    def __init__(self, t, family: str = "ipv4", hook: str = "LOCAL_IN"):
        self.family, self.hook = family, hook
        self.chain = nf_hooks(t).get((family, hook), [])

    def _repr_svg_(self) -> str:
        boxes = [(p, fn) for p, fns in self.chain for fn in fns] or [(None, "(no callbacks)")]
        w = max(220, max(len(fn) for _, fn in boxes) * 8 + 20)
        height = 40 + len(boxes) * 75
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 20}" height="{height}" '
                 f'font-family="monospace" font-size="13">',
                 '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="6" refY="3" '
                 'orient="auto"><path d="M0,0 L6,3 L0,6 z"/></marker></defs>',
                 f'<text x="10" y="18" font-weight="bold">{html.escape(self.family)} '
                 f'{html.escape(self.hook)}: packet ↓</text>']
        for i, (prio, fn) in enumerate(boxes):
            y = 30 + i * 75
            ct = "conntrack" in fn or "confirm" in fn or "defrag" in fn
            fill = "#cfe3ff" if ct else "#eeeeee"
            parts.append(f'<rect x="10" y="{y}" width="{w}" height="50" rx="6" fill="{fill}" stroke="#333"/>')
            parts.append(f'<text x="18" y="{y + 20}">{html.escape(fn)}</text>')
            if prio is not None:
                parts.append(f'<text x="18" y="{y + 40}" fill="#555">priority {prio}</text>')
            if i:
                parts.append(f'<path d="M40,{y - 24} L40,{y - 3}" stroke="#333" marker-end="url(#a)"/>')
        parts.append("</svg>")
        return "".join(parts)

    def __str__(self) -> str:
        return f"{self.family} {self.hook}: " + " → ".join(
            f"{fn} ({p})" for p, fns in self.chain for fn in fns)


def picture(make: Callable[[], object], highlight: Sequence[str] = ()):
    """``make()`` (e.g. ``lambda: observe.path(lab, line)``) as a :class:`Picture` that fits
    the column, or a notice saying why not here.

    Packet paths and entry lifecycles watch the modelled kernel, so they need ``sim``;
    pictures need Graphviz (``dot``).
    """
    try:
        obj = make()
        return Picture(obj, highlight) if hasattr(obj, "_repr_svg_") else obj
    except ImportError as e:
        return Notice(f"No picture: {e} (pip install 'nfteach[render]' and Graphviz's dot).")
    except Exception as e:  # noqa: BLE001 - LabError, graphviz.ExecutableNotFound, ...
        return Notice(f"No picture here: {' '.join(str(e).split())[:300]}")


def hook_chain(t, family: str = "ipv4", hook: str = "LOCAL_IN"):
    """A picture of one hook's callbacks, from a `list-nf-hooks` transcript."""
    return Picture(HookChain(t, family, hook))
