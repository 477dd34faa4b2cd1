"""ftrace on the simulator: tracefs state, the function_graph tracer, ``trace-cmd``, ``cat trace``.

The function_graph recorder listens to the model's tracer. Durations come from a model
clock that advances by a fixed cost per function (:data:`kdata.COSTS_NS`, overridable in
``[trace.costs]``), so the same run always prints the same numbers. The text is what
``kernel/trace/trace_functions_graph.c`` prints (duration column, ``+``/``!`` marks,
two spaces of indent per level, module tags, task switch separators).

>>> from nfteach.sim.trace.ftrace import graph_duration
>>> graph_duration(573), graph_duration(15847)
('  0.573 us    |  ', '+ 15.847 us   |  ')
"""
from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import List

from ...model.backend import Output
from .kdata import ENTRY_NS, KData
from .result import TraceEvent, TraceResult, _proc, graph_duration  # noqa: F401 (graph_duration: API)
from .state import profile_functions, trace_state

TRACE_FILES = ("/sys/kernel/debug/tracing/trace", "/sys/kernel/tracing/trace")
#: trace-cmd start -g F when the kernel refuses F in set_graph_function (EINVAL): die() in
#: trace-cmd's trace-record.c, the strerror line first; the same in trace-cmd 3.1 (Debian 12)
#: and 3.3 (Debian 13), as the vm guests print it (nfteach fidelity, seed 2)
GRAPH_FUNCTION_REFUSED = ("trace-cmd: Invalid argument\n  Failed to write {f} to set_graph_function.\n"
                          "Perhaps this function is not available for tracing.\n"
                          "run 'trace-cmd list -f {f}' to see if it is.\n")


@functools.lru_cache(maxsize=1)
def _symbols_elsewhere() -> frozenset:
    """Kernel symbols of the functions the model runs on any kernel profile."""
    from ...model.profile import available_profiles, load_profile

    out = set()
    for name in available_profiles():
        prof = load_profile(name)
        kd = KData(prof)
        out |= {kd.symbol(f) for f in profile_functions(prof)} - {None}
    return frozenset(out)
@dataclass
class _Open:
    symbol: str
    model: str
    start: int
    index: int          # position of the entry record
    children: bool = False


@dataclass
class Tracefs:
    """The tracing directory of one kernel (one instance: the top-level one)."""

    kernel: object
    tracer: str = "nop"
    tracing_on: bool = True
    graph_functions: List[str] = field(default_factory=list)
    records: List[TraceEvent] = field(default_factory=list)
    clock: int = 0
    _open: List[_Open] = field(default_factory=list)
    _listening: bool = False

    @property
    def kd(self) -> KData:
        return KData(self.kernel.profile)

    def set_tracer(self, name: str, graph: List[str]) -> None:
        self.reset()
        self.tracer = name
        self.graph_functions = list(graph)
        self.tracing_on = True
        self._kd = self.kd
        if not self._listening:
            self.kernel.tracer.listeners.append(self.on_event)
            self._listening = True

    def reset(self) -> None:
        if self._listening:
            self.kernel.tracer.listeners.remove(self.on_event)
            self._listening = False
        self.tracer, self.graph_functions, self.records, self._open = "nop", [], [], []
        self.tracing_on = True

    # recording ---------------------------------------------------------------------------
    def on_event(self, ev) -> None:
        if not self.tracing_on or self.tracer != "function_graph":
            return
        kd = self._kd
        sym = kd.symbol_in(self.kernel.tracer.stack) if kd.symbols_at else kd.symbol(ev.function)
        if sym is None or (kd.cut and not kd.runs(self.kernel.tracer.stack)) or \
                (kd.hidden_calls and kd.hidden_at(self.kernel.tracer.stack)):
            return
        if ev.kind == "entry":
            self.clock += ENTRY_NS
            if not self._open and self.graph_functions and sym not in self.graph_functions:
                return
            if self._open:
                self._open[-1].children = True
            st = trace_state(self.kernel)
            rec = TraceEvent(self.kernel.now, ev.cpu, "entry", sym, len(self._open), dict(ev.args),
                             module=kd.module(sym), comm=st.comm, pid=st.pid, model=ev.function)
            self.records.append(rec)
            self._open.append(_Open(sym, ev.function, self.clock, len(self.records) - 1))
        else:
            if not self._open or self._open[-1].model != ev.function:
                return
            self.clock += kd.cost(ev.function)
            o = self._open.pop()
            dur = self.clock - o.start
            entry = self.records[o.index]
            if not o.children:
                self.records[o.index] = entry.replace(kind="leaf", duration_ns=dur)
            else:
                self.records.append(entry.replace(kind="exit", duration_ns=dur, time=self.kernel.now))

    def result(self) -> TraceResult:
        return TraceResult(list(self.records), self.kernel.profile.ncpus, self.tracer)

    # text --------------------------------------------------------------------------------
    def text(self) -> str:
        if self.tracer == "function_graph":
            return self.result().text()
        return nop_header(self.kernel.profile)


def nop_header(profile) -> str:
    old = profile.extra.get("trace", {}).get("nop_header", "6") == "5.10"
    sp = "  "
    if old:
        rows = ["  _-----=> irqs-off", " / _----=> need-resched", "| / _---=> hardirq/softirq",
                "|| / _--=> preempt-depth", "||| /     delay"]
        task = f"#           TASK-PID  {sp} CPU#  ||||   TIMESTAMP  FUNCTION\n"
        bars = f"#              | |    {sp}   |   ||||      |         |\n"
    else:
        rows = ["  _-----=> irqs-off/BH-disabled", " / _----=> need-resched", "| / _---=> hardirq/softirq",
                "|| / _--=> preempt-depth", "||| / _-=> migrate-disable", "|||| /     delay"]
        task = f"#           TASK-PID  {sp} CPU#  |||||  TIMESTAMP  FUNCTION\n"
        bars = f"#              | |    {sp}   |   |||||     |         |\n"
    head = f"# tracer: nop\n#\n# entries-in-buffer/entries-written: 0/0   #P:{profile.ncpus}\n#\n"
    # no blank line after the header when the buffer is empty (measured on 6.18)
    return head + "".join(f"#                            {sp}{r}\n" for r in rows) + task + bars


def tracefs(kernel) -> Tracefs:
    st = trace_state(kernel)
    if st.ftrace is None:
        st.ftrace = Tracefs(kernel)
    return st.ftrace


# -- commands -------------------------------------------------------------------------------
def trace_cmd(kernel, ns, argv) -> Output:
    kd = KData(kernel.profile)
    if not kd.function_graph:
        return Output.of(stderr=f"nfteach: trace-cmd: the ftrace function tracers are not available on this "
                         f"kernel ({kernel.profile.name}, as on the live backend); run it with --backend vm\n", status=2)
    sub = argv[1] if len(argv) > 1 else ""
    fs = tracefs(kernel)
    if sub == "start":
        plugin, graph, i = None, [], 2
        while i < len(argv):
            a = argv[i]
            if a == "-p" and i + 1 < len(argv):
                plugin = argv[i + 1]
                i += 2
            elif a == "-g" and i + 1 < len(argv):
                graph.append(argv[i + 1])
                i += 2
            else:
                return Output.of(stderr=f"nfteach: trace-cmd start: option {a!r} is not modelled "
                                 "(supported: -p function_graph, -g FUNCTION)\n", status=2)
        if plugin not in ("function_graph", "nop"):
            return Output.of(stderr=f"nfteach: trace-cmd start: plugin {plugin!r} is not modelled "
                             "(supported: -p function_graph)\n", status=2)
        known = {kd.symbol(f) for f in trace_state(kernel).known_functions(kernel)} - {None}
        for g in graph:
            mod = kd.module(g) if g in known else ""
            if (mod and mod not in kernel.modules.loaded) or (g not in known and g in _symbols_elsewhere()):
                # not in available_filter_functions: its module is not loaded, or this kernel
                # has no such function (6.12 has no ipv4_confirm); the kernel refuses the write
                return Output.of(stderr=GRAPH_FUNCTION_REFUSED.format(f=g), status=22)
            if g not in known:
                near = difflib.get_close_matches(g, sorted(known), n=4, cutoff=0.5)
                hint = f"closest: {', '.join(near)}" if near else f"-g takes one of the {len(known)} it models"
                return Output.of(stderr=f"nfteach: trace-cmd: the simulator does not run {g} on kernel "
                                 f"{kernel.profile.name} ({hint}; bpftrace -l 'kprobe:*' lists them)\n", status=2)
        fs.set_tracer(plugin, graph)
        return Output.of(stdout=f"  plugin '{plugin}'\n")
    if sub == "stop":
        fs.tracing_on = False
        return Output.of()
    if sub == "reset":
        fs.reset()
        return Output.of()
    if sub == "show":
        return Output.of(stdout=fs.text())
    return Output.of(stderr=f"nfteach: trace-cmd {sub or ''}: not modelled (supported: start -p function_graph "
                     "-g F, stop, show, reset)\n".replace(" :", ":"), status=2)


def cat_trace(kernel, path: str) -> Output:
    return Output.of(stdout=tracefs(kernel).text())
