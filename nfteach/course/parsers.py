"""Reading what the tools printed: `conntrack -L` entries, flow counts, `list-nf-hooks`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .settings import Notice
from .shown import show, text_of

_UNAVAILABLE = re.compile(r"^nfteach: (.*(?:not available|not modelled|not a lab command|--backend|no such job).*)$", re.M)
#: what the real tools print when a facility is missing (bpftrace on a kernel without kprobes)
_TOOL_FAILED = re.compile(r"^(ERROR: (?:Could not|failed to) (?:attach|detach) .*|"
                          r".*kprobe_events\): No such file or directory)$", re.M)


def unavailable(t) -> Optional[str]:
    """Why a tool of the transcript could not run here (the lab's one-line message, or the
    real tool's own "cannot attach" error), if it could not."""
    text = text_of(t)
    m = _UNAVAILABLE.search(text) or _TOOL_FAILED.search(text)
    return m.group(1) if m else None


def ran(t, why: str = "") -> bool:
    """True if every tool of the transcript ran; else show the lab's reason and return False."""
    reason = unavailable(t)
    if reason is None:
        return True
    show(Notice(f"Not on this backend yet: {reason}. {why}".strip()))
    return False


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
    for line in text_of(t).splitlines():
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
    found = _FLOWS.findall(text_of(t))
    return int(found[-1]) if found else None


def nf_hooks(t) -> Dict[Tuple[str, str], List[Tuple[int, List[str]]]]:
    """`list-nf-hooks` output -> {(family, hook): [(priority, [functions in run order])]}."""
    out: Dict[Tuple[str, str], List[Tuple[int, List[str]]]] = {}
    cur = None
    for line in text_of(t).splitlines():
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


# -- function_graph ---------------------------------------------------------------------
_GRAPH_LINE = re.compile(r"^\s*\d+\)\s.*?\|( *)(\S.*)$")


@dataclass(frozen=True)
class CallTrees:
    """The top-level call trees of a function_graph trace that contain a function (the
    others left out), with that function's own calls marked ``▶``."""

    text: str          # what is shown: the trace's header, then the kept trees
    inside: str        # the subtree of the function looked for (its first occurrence)
    shown: int         # call lines kept
    total: int         # call lines in the whole trace

    def calls(self, function: str) -> bool:
        """True if ``function`` is called inside the function looked for."""
        return re.search(rf"(?<![\w.]){re.escape(function)}(?![\w])", self.inside) is not None

    def __str__(self) -> str:
        return (f"{self.text}\n({self.shown} of the trace's {self.total} call lines: only the tree that calls "
                "the function; ▶ marks its own calls)")


def call_trees(t, containing: str) -> CallTrees:
    """Keep the call trees of a ``function_graph`` trace that call ``containing`` (e.g. the
    SYN's tree: the one that calls ``init_conntrack``), and the leaf calls right before
    them (the same packet's earlier callbacks)."""
    header, blocks, cur, pending = [], [], None, []
    total = 0
    for line in text_of(t).splitlines():
        m = _GRAPH_LINE.match(line)
        if not m:
            if line.startswith("#"):
                header.append(line)
            continue
        total += 1
        depth = (len(m.group(1)) - 2) // 2
        if cur is None:
            if depth == 0 and m.group(2).endswith("{"):
                cur = pending + [line]
                pending = []
            elif depth == 0:
                pending = (pending + [line])[-4:]
            continue
        cur.append(line)
        if depth == 0 and m.group(2).startswith("}"):
            blocks.append(cur)
            cur = None
    kept = [b for b in blocks if any(containing in ln for ln in b)]
    out, inside = [], []
    for b in kept:
        d0 = None  # depth of `containing` while inside its first occurrence
        for line in b:
            m = _GRAPH_LINE.match(line)
            depth = (len(m.group(1)) - 2) // 2
            if d0 is not None and depth <= d0:
                d0 = None
                inside.append(None)     # the first occurrence is over
            elif d0 is not None:
                inside.append(line)
                if depth == d0 + 1 and not m.group(2).startswith("}"):
                    line = "▶" + line[1:]
            elif containing in m.group(2) and None not in inside:
                d0 = depth
            out.append(line)
    inside = [x for x in inside if x is not None]
    return CallTrees("\n".join(header + out), "\n".join(inside), sum(len(b) for b in kept), total)
