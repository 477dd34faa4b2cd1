"""Small helpers the course notebooks share.

Every notebook starts the same way::

    from nfteach import course
    lab = course.open_lab()      # NFTEACH_BACKEND / NFTEACH_KERNEL, default: sim 5.10
    course.banner(lab)           # the first output says which backend produced the results

``NFTEACH_BACKEND`` (``sim``, ``live``, ``vm``) and ``NFTEACH_KERNEL`` (``5.10``, ``6.1``, ``6.12``,
``6.18``) choose the lab for the whole course; ``nfteach tour`` and CI set them.

>>> flow_count("conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.")
2
>>> [e.state for e in entries("tcp      6 119 SYN_SENT src=1.1.1.1 dst=2.2.2.2 sport=5 dport=2570 [UNREPLIED] "
...                           "src=2.2.2.2 dst=1.1.1.1 sport=2570 dport=5 mark=0 use=1")]
['SYN_SENT']
"""
from __future__ import annotations

import atexit
import html
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .lab import Lab

ENV_BACKEND = "NFTEACH_BACKEND"
ENV_KERNEL = "NFTEACH_KERNEL"
DEFAULT_BACKEND = "sim"
DEFAULT_KERNEL = "5.10"
ARTICLE = "https://blog.cloudflare.com/conntrack-turns-a-blind-eye-to-dropped-syns/"
#: kernels each backend can compare side by side (live has only this machine's kernel)
KERNELS = {"sim": ("5.10", "6.1", "6.12", "6.18"), "vm": ("5.10", "6.1", "6.12"), "live": (None,)}


# -- the lab of a notebook -------------------------------------------------------------
def settings(backend: Optional[str] = None, kernel: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """(backend, kernel) from the arguments, else the environment, else sim 5.10."""
    backend = backend or os.environ.get(ENV_BACKEND) or DEFAULT_BACKEND
    kernel = kernel or os.environ.get(ENV_KERNEL) or None
    if kernel is None and backend != "live":
        kernel = DEFAULT_KERNEL
    return backend, kernel


def open_lab(backend: Optional[str] = None, kernel: Optional[str] = None) -> Lab:
    """A started lab for a notebook; closed when the notebook's kernel exits."""
    lab = Lab(*settings(backend, kernel)).start()
    atexit.register(lab.close)
    return lab


def reset(lab: Lab, all_mine: bool = False) -> Lab:
    """A stuck lab: ``lab = course.reset(lab)`` closes it, ends this user's left-over labs
    (what ``nfteach reset`` does; ``all_mine=True`` also ends the labs of other notebooks
    of this user that are still open), and returns a fresh lab of the same backend and kernel."""
    from .reset import reset as reset_mine

    backend, kernel = lab.name, (None if lab.name == "live" else lab.kernel)
    try:
        lab.close()
    except Exception:  # noqa: BLE001 - a lab stuck enough to need a reset may fail to close
        pass
    reset_mine(all_mine=all_mine)
    return open_lab(backend, kernel)


def kernels(lab_or_backend) -> Tuple[Optional[str], ...]:
    """The kernels this backend can put side by side."""
    name = lab_or_backend if isinstance(lab_or_backend, str) else lab_or_backend.name
    return KERNELS.get(name, (None,))


class _Shown:
    """Text for terminals and plain output, HTML for notebooks."""

    text = ""

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text)}</pre>"


class Banner(_Shown):
    def __init__(self, lab: Lab):
        self.backend, self.kernel = lab.name, lab.kernel
        self.text = f"nfteach lab — {lab.describe()}"

    def _repr_html_(self) -> str:
        lab_text = self.text.split(" — ", 1)[-1]
        return (f'<div style="border-left:4px solid #2a7ae2;padding:4px 8px">'
                f"<b>nfteach lab</b>: backend <code>{html.escape(self.backend)}</code>, "
                f"kernel <code>{html.escape(str(self.kernel))}</code><br>"
                f"<small>{html.escape(lab_text)}</small></div>")


def banner(lab: Lab) -> Banner:
    """Which backend and kernel produced the outputs below (display it)."""
    return Banner(lab)


class Notice(_Shown):
    """A cell that cannot run here says why, and what would run it."""

    def __init__(self, text: str):
        self.text = text

    def _repr_html_(self) -> str:
        return (f'<div style="border-left:4px solid #e2a52a;padding:4px 8px">'
                f"{html.escape(self.text)}</div>")


def _show(obj) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - plain Python
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(obj)
    else:
        print(obj)  # noqa: T201 - a notebook helper run outside a notebook


def needs(lab: Lab, *backends: str, why: str = "") -> bool:
    """True if the lab runs on one of ``backends``; otherwise show why the cell skips.

    Cells tagged ``vm-only``/``live-only`` start with ``if course.needs(lab, "vm", why=...):``.
    """
    if lab.name in backends:
        return True
    want = " or ".join(backends)
    _show(Notice(f"This cell needs the {want} backend ({why or 'a real kernel'}); this lab runs on "
                 f"{lab.name}, so it skips. Run the course with {ENV_BACKEND}={backends[0]} "
                 f"(e.g. `nfteach tour --backend {backends[0]}`) to see it."))
    return False


_UNAVAILABLE = re.compile(r"^nfteach: (.*(?:not available|not modelled|not a lab command|--backend|no such job).*)$", re.M)


#: what the real tools print when a facility is missing (bpftrace on a kernel without kprobes)
_TOOL_FAILED = re.compile(r"^(ERROR: (?:Could not|failed to) (?:attach|detach) .*|"
                          r".*kprobe_events\): No such file or directory)$", re.M)


def unavailable(t) -> Optional[str]:
    """Why a tool of the transcript could not run here (the lab's one-line message, or the
    real tool's own "cannot attach" error), if it could not."""
    text = _text(t)
    m = _UNAVAILABLE.search(text) or _TOOL_FAILED.search(text)
    return m.group(1) if m else None


def ran(t, why: str = "") -> bool:
    """True if every tool of the transcript ran; else show the lab's reason and return False."""
    reason = unavailable(t)
    if reason is None:
        return True
    _show(Notice(f"Not on this backend yet: {reason}. {why}".strip()))
    return False


# -- reading what the tools printed ------------------------------------------------------
def _text(t) -> str:
    if hasattr(t, "text") and callable(t.text):
        return t.text()
    if hasattr(t, "output"):
        return t.output
    return str(t)


_FLOWS = re.compile(r"(\d+) flow entries have been shown")
_ENTRY = re.compile(r"^(?P<proto>tcp|udp|icmp|unknown)\s+\d+\s+(?P<timeout>\d+)\s+(?:(?P<state>[A-Z_0-9]+)\s+)?src=")
_KV = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class Entry:
    """One `conntrack -L` line: original tuple, state, flags."""

    proto: str
    timeout: int
    state: str
    src: str
    dst: str
    sport: int
    dport: int
    flags: Tuple[str, ...] = ()
    line: str = field(default="", compare=False)


def entries(t) -> List[Entry]:
    """Every `conntrack -L` entry line in a transcript (or text)."""
    out = []
    for line in _text(t).splitlines():
        m = _ENTRY.match(line)
        if not m:
            continue
        kv: Dict[str, str] = {}
        for k, v in _KV.findall(line):
            kv.setdefault(k, v)
        flags = tuple(re.findall(r"\[([A-Z_]+)\]", line))
        out.append(Entry(m["proto"], int(m["timeout"]), m["state"] or "", kv.get("src", ""),
                         kv.get("dst", ""), int(kv.get("sport", 0)), int(kv.get("dport", 0)), flags, line))
    return out


def flow_count(t) -> Optional[int]:
    """The number in the last "N flow entries have been shown." of a transcript."""
    found = _FLOWS.findall(_text(t))
    return int(found[-1]) if found else None


def nf_hooks(t) -> Dict[Tuple[str, str], List[Tuple[int, List[str]]]]:
    """`list-nf-hooks` output -> {(family, hook): [(priority, [functions in run order])]}."""
    out: Dict[Tuple[str, str], List[Tuple[int, List[str]]]] = {}
    cur = None
    for line in _text(t).splitlines():
        m = re.match(r"^🪝 (\w+) (\w+)\s*$", line)
        if m:
            cur = (m[1], m[2])
            out.setdefault(cur, [])
            continue
        m = re.match(r"^\s*(-?\d+) → (.+?)\s*(?:☜.*)?$", line)
        if m and cur:
            out[cur].append((int(m[1]), [f.strip() for f in m[2].split(",")]))
    return out


def run_order(t, family: str = "ipv4", hook: str = "LOCAL_IN") -> List[str]:
    """The functions of one hook in the order Netfilter calls them."""
    return [fn for _, fns in nf_hooks(t).get((family, hook), []) for fn in fns]


def tool_source(name: str) -> str:
    """The text of one of the article's tools bundled with nfteach (``/vagrant/tools/NAME`` in the lab)."""
    from importlib import resources

    return resources.files("nfteach.tools").joinpath(name).read_text()


def profile(kernel: str):
    """The simulator's data about one kernel (function names, hook functions, lists)."""
    from .model.profile import load_profile

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


class ProfileTable(_Shown):
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


def profile_table(names: Sequence[str] = ("5.10", "6.1", "6.18")) -> ProfileTable:
    """What differs between kernels, from the profiles the simulator and the vm backend share."""
    return ProfileTable(names)


def program(lab: Lab):
    """A drgn ``Program`` reading the lab's kernel, or None (with a notice) where there is none yet."""
    try:
        from . import introspect
    except ImportError as e:
        _show(Notice(f"drgn introspection (nfteach.introspect) is not installed in this nfteach yet ({e}); "
                     "the lab command `drgn` below says what this backend can do."))
        return None
    try:
        return introspect.program(lab)
    except Exception as e:  # noqa: BLE001 - explain, do not fail the notebook
        _show(Notice(f"No drgn program on the {lab.name} backend: {e}"))
        return None


# -- pictures ----------------------------------------------------------------------------
class HookChain:
    """The callbacks of one hook as a row of boxes, in run order (an SVG).

    Used when ``nfteach.render.graphs`` is not installed; conntrack's callbacks are blue.
    """

    def __init__(self, t, family: str = "ipv4", hook: str = "LOCAL_IN"):
        self.family, self.hook = family, hook
        self.chain = nf_hooks(t).get((family, hook), [])

    def _repr_svg_(self) -> str:
        boxes = [(p, fn) for p, fns in self.chain for fn in fns] or [(None, "(no callbacks)")]
        w = max(150, max(len(fn) for _, fn in boxes) * 8 + 20)
        width = 20 + len(boxes) * (w + 30)
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="110" '
                 f'font-family="monospace" font-size="13">',
                 f'<text x="10" y="18" font-weight="bold">{html.escape(self.family)} '
                 f'{html.escape(self.hook)}: packet →</text>']
        for i, (prio, fn) in enumerate(boxes):
            x = 10 + i * (w + 30)
            ct = "conntrack" in fn or "confirm" in fn or "defrag" in fn
            fill = "#cfe3ff" if ct else "#eeeeee"
            parts.append(f'<rect x="{x}" y="35" width="{w}" height="50" rx="6" fill="{fill}" stroke="#333"/>')
            parts.append(f'<text x="{x + 8}" y="55">{html.escape(fn)}</text>')
            if prio is not None:
                parts.append(f'<text x="{x + 8}" y="75" fill="#555">priority {prio}</text>')
            if i:
                parts.append(f'<path d="M{x - 28},60 L{x - 4},60" stroke="#333" marker-end="url(#a)"/>')
        parts.insert(1, '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="6" refY="3" '
                        'orient="auto"><path d="M0,0 L6,3 L0,6 z"/></marker></defs>')
        parts.append("</svg>")
        return "".join(parts)

    def __str__(self) -> str:
        return f"{self.family} {self.hook}: " + " → ".join(
            f"{fn} ({p})" for p, fns in self.chain for fn in fns)


def picture(make: Callable[[], object]):
    """``make()`` (e.g. ``lambda: observe.path(lab, line)``), or a notice saying why not here.

    Packet paths and entry lifecycles watch the modelled kernel, so they need ``sim``;
    pictures need Graphviz (``dot``).
    """
    try:
        obj = make()
        if hasattr(obj, "_repr_svg_"):
            obj._repr_svg_()          # render now: a missing `dot` shows up here, not later
        return obj
    except ImportError as e:
        return Notice(f"No picture: {e} (pip install 'nfteach[render]' and Graphviz's dot).")
    except Exception as e:  # noqa: BLE001 - LabError, graphviz.ExecutableNotFound, ...
        return Notice(f"No picture here: {' '.join(str(e).split())[:300]}")


def hook_chain(t, family: str = "ipv4", hook: str = "LOCAL_IN"):
    """A picture of one hook's callbacks, from a `list-nf-hooks` transcript."""
    return HookChain(t, family, hook)


# -- predict, then observe ---------------------------------------------------------------
class Verdict(_Shown):
    def __init__(self, correct: Optional[bool], text: str, evidence=None):
        self.correct, self.evidence = correct, evidence
        self.text = text + (f"\n\n{_text(evidence)}" if evidence is not None else "")

    def _repr_html_(self) -> str:
        colour = {True: "#2a9d4a", False: "#d1452b", None: "#888888"}[self.correct]
        head, _, rest = self.text.partition("\n\n")
        body = f"<pre>{html.escape(rest)}</pre>" if rest else ""
        return f'<div style="border-left:4px solid {colour};padding:4px 8px">{html.escape(head)}{body}</div>'


class Prediction(_Shown):
    """A "predict, then observe" exercise.

    ``answer_fn()`` runs the lab and returns one of ``choices`` (or ``(choice, transcript)``
    to show the evidence). Display the object to see the question; ``check(guess)`` runs
    the lab once and compares. ``guess`` is a choice's text or its number (1, 2, ...).
    """

    def __init__(self, question: str, choices: Sequence[str], answer_fn: Callable[[], object],
                 explain: str = ""):
        self.question, self.choices, self.answer_fn, self.explain = question, list(choices), answer_fn, explain
        self._observed: Optional[Tuple[str, object]] = None
        self.text = question + "\n" + "\n".join(f"  {i}. {c}" for i, c in enumerate(self.choices, 1)) + \
            "\nPut your prediction in the next cell (its number or its text), then run it."

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(c)}</li>" for c in self.choices)
        return (f'<div style="border-left:4px solid #7a4ae2;padding:4px 8px"><b>Predict:</b> '
                f"{html.escape(self.question)}<ol>{items}</ol><small>Put your prediction in the next "
                f"cell (its number or its text), then run it.</small></div>")

    def observe(self) -> str:
        if self._observed is None:
            got = self.answer_fn()
            answer, evidence = got if isinstance(got, tuple) else (got, None)
            self._observed = (str(answer), evidence)
        return self._observed[0]

    @property
    def observed(self) -> str:
        """What the lab answered (runs the lab the first time)."""
        return self.observe()

    def _match(self, guess) -> Optional[str]:
        if isinstance(guess, int) and not isinstance(guess, bool) and 1 <= guess <= len(self.choices):
            return self.choices[guess - 1]
        g = str(guess).strip().lower()
        for c in self.choices:
            if c.lower() == g:
                return c
        if g.isdigit() and 1 <= int(g) <= len(self.choices):
            return self.choices[int(g) - 1]
        return None

    def check(self, guess=None) -> Verdict:
        observed = self.observe()
        evidence = self._observed[1]
        tail = f" {self.explain}" if self.explain else ""
        if guess is None or (isinstance(guess, str) and not guess.strip()):
            return Verdict(None, f"No prediction yet — the lab says: {observed}.{tail}", evidence)
        choice = self._match(guess)
        if choice is None:
            return Verdict(None, f"{guess!r} is not one of the choices ({', '.join(self.choices)}); "
                                 f"the lab says: {observed}.{tail}", evidence)
        if choice == observed:
            return Verdict(True, f"✔ You predicted “{choice}” and the lab agrees.{tail}", evidence)
        return Verdict(False, f"✘ You predicted “{choice}”; the lab says “{observed}”.{tail}", evidence)


def predict(question: str, choices: Sequence[str], answer_fn: Callable[[], object], explain: str = "") -> Prediction:
    """A "predict, then observe" exercise (see :class:`Prediction`)."""
    return Prediction(question, choices, answer_fn, explain)


# -- kernels side by side ------------------------------------------------------------------
class SideBySide(_Shown):
    """The same script on several kernels, one column each."""

    def __init__(self, runs: Dict[str, object]):
        self.runs = runs
        self.text = "\n".join(f"===== kernel {k} =====\n{_text(t)}" for k, t in runs.items())

    def _repr_html_(self) -> str:
        head = "".join(f"<th>kernel {html.escape(k)}</th>" for k in self.runs)
        cells = "".join(f'<td style="vertical-align:top;text-align:left"><pre>{html.escape(_text(t))}</pre></td>'
                        for t in self.runs.values())
        return f"<table><tr>{head}</tr><tr>{cells}</tr></table>"

    def __getitem__(self, kernel: str):
        return self.runs[kernel]


def what_changed(runs):
    """The table of notebook 10: what each kernel's lab printed, one column per kernel
    (``runs``: a ``side_by_side`` of ``kernel_changes.SCRIPT``; see ``nfteach.kernel_changes``)."""
    from .kernel_changes import Changes

    return Changes(getattr(runs, "runs", runs))


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
