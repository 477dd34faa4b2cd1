"""One structured trace behind the text: what widgets and notebooks use.

>>> r = TraceResult([TraceEvent(1.0, 1, "leaf", "get_l4proto", 0, module="nf_conntrack", duration_ns=573)], 2)
>>> print(r.text().splitlines()[-1])
 1)   0.573 us    |  get_l4proto [nf_conntrack]();
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

HEADER = ("# tracer: function_graph\n#\n"
          "# CPU  DURATION                  FUNCTION CALLS\n"
          "# |     |   |                     |   |   |   |\n")
SEPARATOR = " ------------------------------------------\n"


_MARKS = ((1000000000, "$"), (100000000, "@"), (10000000, "*"), (1000000, "#"), (100000, "!"), (10000, "+"))


def graph_duration(ns: Optional[int]) -> str:
    """The DURATION column of a function_graph line (``print_graph_duration``)."""
    if ns is None:
        return "              |  "
    mark = next((m for v, m in _MARKS if ns > v), " ")
    usecs, rem = divmod(ns, 1000)
    s = str(usecs)
    n = len(s)
    if n < 7:
        frac = f"{rem:03d}"[: min(5, 8 - n) - 1]
        s += "." + frac
        n += len(frac) + 1
    s += " us " + " " * max(0, 8 - n)
    return f"{mark} {s}|  "


def _proc(comm: str, pid: int) -> str:
    comm = "<idle>" if pid == 0 else comm[:7]
    text = f"{comm}-{pid}"
    spaces = max(0, 14 - len(text))
    return " " * (spaces // 2) + text + " " * (spaces - spaces // 2)


@dataclass(frozen=True)
class TraceEvent:
    """One function_graph record: ``entry`` (``f() {``), ``exit`` (``}``) or ``leaf`` (``f();``)."""

    time: float
    cpu: int
    kind: str
    function: str            # the kernel's symbol (init_conntrack.constprop.0)
    depth: int
    args: Dict[str, object] = field(default_factory=dict, compare=False)
    module: str = ""
    duration_ns: Optional[int] = None
    comm: str = ""
    pid: int = 0
    model: str = ""          # the model's function name

    def replace(self, **kw) -> TraceEvent:
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        d = {"time": self.time, "cpu": self.cpu, "kind": self.kind, "function": self.function,
             "depth": self.depth, "module": self.module, "duration_ns": self.duration_ns,
             "comm": self.comm, "pid": self.pid}
        d["args"] = {k: _arg(v) for k, v in self.args.items()}
        return d


def _arg(v):
    if isinstance(v, (int, float, str)) or v is None:
        return v
    if hasattr(v, "saddr"):  # an skb
        return f"{v.saddr}:{v.sport} > {v.daddr}:{v.dport} {v.flag_names()}"
    return type(v).__name__


@dataclass
class TraceResult:
    events: List[TraceEvent]
    ncpus: int = 2
    tracer: str = "function_graph"

    def functions(self) -> List[str]:
        """Function names in call order (entries and leaves)."""
        return [e.function for e in self.events if e.kind in ("entry", "leaf")]

    def text(self) -> str:
        w = len(str(max(self.ncpus - 1, 0)))
        out = [HEADER]
        last: Dict[int, tuple] = {}
        for e in self.events:
            who = (e.comm, e.pid)
            prev = last.get(e.cpu)
            last[e.cpu] = who
            if prev is not None and prev != who:
                out.append(SEPARATOR)
                out.append(f" {e.cpu:>{w}}) {_proc(*prev)} => {_proc(*who)}\n")
                out.append(SEPARATOR + "\n")
            mod = f" [{e.module}]" if e.module else ""
            ind = "  " * e.depth
            if e.kind == "entry":
                line = graph_duration(None) + f"{ind}{e.function}{mod}() {{"
            elif e.kind == "leaf":
                line = graph_duration(e.duration_ns) + f"{ind}{e.function}{mod}();"
            else:
                line = graph_duration(e.duration_ns) + f"{ind}}}"
            out.append(f" {e.cpu:>{w}}) {line}\n")
        return "".join(out)

    def to_json(self) -> str:
        return json.dumps({"tracer": self.tracer, "events": [e.to_dict() for e in self.events]}, indent=1)

    def __str__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text())
