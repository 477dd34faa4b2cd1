"""Kernels side by side: what their profiles say, and the same script run on each."""
from __future__ import annotations

import html
from typing import Dict, Optional, Sequence

from ..lab import Lab
from .settings import kernels
from .shown import Shown, text_of


def profile(kernel: str):
    """The simulator's data about one kernel (function names, hook functions, lists)."""
    from ..model.profile import load_profile

    return load_profile(kernel)


#: what the course compares between kernels: (label, where in the profile)
PROFILE_ROWS = (
    ("conntrack confirm hook (LOCAL_IN, POST_ROUTING)", "hookfn", "confirm4"),
    ("iptables-legacy filter hook", "hookfn", "xt_filter4"),
    ("NAT hook on LOCAL_IN", "hookfn", "nat_in4"),
    ("destroy function", "functions", "destroy"),
    ("frees a dropped packet", "functions", "free_skb"),
    ("removes from the unconfirmed list", "functions", "del_unconfirmed"),
    ("per-CPU unconfirmed list", "attr", "has_unconfirmed_list"),
)


class ProfileTable(Shown):
    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self.rows = []
        for label, where, key in PROFILE_ROWS:
            vals = []
            for n in self.names:
                p = profile(n)
                v = getattr(p, key) if where == "attr" else getattr(p, where).get(key, "")
                vals.append("yes" if v is True else "no" if v is False else (v or "—"))
            self.rows.append((label, vals))
        w = max(len(r[0]) for r in self.rows)
        self.text = "\n".join([f"{'':{w}}  " + "  ".join(f"{n:24}" for n in self.names)] +
                              [f"{lab:{w}}  " + "  ".join(f"{v:24}" for v in vals) for lab, vals in self.rows])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(n)}</th>" for n in self.names)
        body = "".join("<tr><td>" + html.escape(lab) + "</td>" +
                       "".join(f"<td><code>{html.escape(v)}</code></td>" for v in vals) + "</tr>"
                       for lab, vals in self.rows)
        return f"<table><tr><th></th>{head}</tr>{body}</table>"

    def value(self, label_start: str, kernel: str) -> str:
        for lab, vals in self.rows:
            if lab.startswith(label_start):
                return vals[self.names.index(kernel)]
        raise KeyError(label_start)


def profile_table(names: Optional[Sequence[str]] = None) -> ProfileTable:
    """What differs between kernels, from the profiles the simulator and the vm backend share
    (default: every profile)."""
    from ..model.profile import available_profiles

    return ProfileTable(names or available_profiles())


def what_changed(runs):
    """The table of notebook 10: what each kernel's lab printed, one column per kernel
    (``runs``: a ``side_by_side`` of ``kernel_changes.SCRIPT``; see ``nfteach.kernel_changes``)."""
    from ..kernel_changes import Changes

    return Changes(getattr(runs, "runs", runs))


class SideBySide(Shown):
    """The same script on several kernels, one column each (long lines wrap: the table
    fits the notebook's column)."""

    def __init__(self, runs: Dict[str, object]):
        self.runs = runs
        self.text = "\n".join(f"===== kernel {k} =====\n{text_of(t)}" for k, t in runs.items())

    def _repr_html_(self) -> str:
        width = f"{100 / max(len(self.runs), 1):.0f}%"
        head = "".join(f'<th style="width:{width};text-align:left">kernel {html.escape(k)}</th>' for k in self.runs)
        cells = "".join(f'<td style="vertical-align:top;text-align:left"><pre style="white-space:pre-wrap;'
                        f'word-break:break-all;font-size:11px">{html.escape(text_of(t))}</pre></td>'
                        for t in self.runs.values())
        return f'<table style="table-layout:fixed;width:100%"><tr>{head}</tr><tr>{cells}</tr></table>'

    def __getitem__(self, kernel: str):
        return self.runs[kernel]


def side_by_side(lab: Lab, script, kernels_: Optional[Sequence[Optional[str]]] = None) -> SideBySide:
    """Run ``script`` in a fresh lab of each kernel the backend offers (the lab itself on live).

    ``script`` is lab text, or a function of the kernel name that returns lab text.
    """
    runs: Dict[str, object] = {}
    for k in kernels_ or kernels(lab):
        text = script(k or lab.kernel) if callable(script) else script
        if k is None:
            runs[str(lab.kernel)] = lab.script(text)
            continue
        with Lab(lab.name, kernel=k) as other:
            runs[k] = other.script(text)
    return SideBySide(runs)
