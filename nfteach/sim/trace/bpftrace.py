"""``bpftrace`` on the simulator: probes attach to the model's tracer, programs run on its events.

A session is one bpftrace process. :func:`start` parses, checks and attaches (printing what
bpftrace prints up to "Attaching N probes..." and the BEGIN probe); the model then runs and
the probes fire from its own execution; :meth:`Session.stop` (SIGINT, or ``exit()`` in the
program) runs END and prints the maps, as bpftrace 0.17 does.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import fnmatch
from typing import Dict, List, Optional, Tuple

from ...model.backend import Output
from . import bt_lang as L
from .bt_mem import Memory
from .bt_run import Ctx, Runtime
from .kdata import HOOK_SIGNATURE, SIGNATURES, KData
from .state import HELPERS, trace_state

USAGE_HINT = "supported: bpftrace -e 'PROGRAM', bpftrace FILE, bpftrace -l ['PATTERN']"
#: wall clock of model time 0 (time() output; normalised away in comparisons)
EPOCH = _dt.datetime(2021, 1, 31, 13, 0, 0)


class Session:
    def __init__(self, kernel, argv: List[str], files: Dict[str, str]):
        self.k = kernel
        self.kd = KData(kernel.profile)
        self.argv = argv
        self.files = files
        self.chunks: List[Tuple[str, str]] = []
        self.status = 0
        self.done = False
        self.rt: Optional[Runtime] = None
        self.kprobes: Dict[str, List[Tuple[int, str, str]]] = {}   # model fn -> [(probe index, attach, symbol)]
        self.kretprobes: Dict[str, List[Tuple[int, str, str]]] = {}
        self.tps: Dict[str, List[Tuple[int, str]]] = {}            # model fn -> [(probe index, tp name)]
        self.begin: List[int] = []
        self.end: List[int] = []
        self.detach_errors: List[str] = []
        self.mem = Memory()
        self.mem.kstack_indent = int(self.kd.t.get("kstack_indent", 4))

    # -- output ----------------------------------------------------------------------------
    def out(self, text: str) -> None:
        if text:
            self.chunks.append(("out", text))

    def err(self, text: str) -> None:
        if text:
            self.chunks.append(("err", text))

    def output(self) -> Output:
        return Output(tuple(self.chunks), self.status)

    def fail(self, text: str, status: int = 1) -> None:
        self.err(text)
        self.status = status
        self.finish(print_maps=False)

    # -- start -----------------------------------------------------------------------------
    def start(self) -> None:
        args = self.argv[1:]
        prog_text = filename = None
        listing = None
        i = 0
        while i < len(args):
            a = args[i]
            if a == "-e" and i + 1 < len(args):
                prog_text, filename = args[i + 1], "stdin"
                i += 2
            elif a == "-l":
                listing = args[i + 1] if i + 1 < len(args) else "*"
                i += 2
            elif a in ("-q", "--unsafe", "-B", "line", "-f", "text"):
                i += 1
            elif a.startswith("-"):
                return self.fail(f"nfteach: bpftrace: option {a} is not modelled ({USAGE_HINT})\n", 2)
            elif prog_text is None:
                if a not in self.files:
                    return self.fail(f"ERROR: failed to open file '{a}': No such file or directory\n")
                prog_text, filename = self.files[a], a
                i += 1
            else:
                return self.fail(f"nfteach: bpftrace: unexpected argument {a!r} ({USAGE_HINT})\n", 2)
        self.err(self.kd.preamble)
        if listing is not None:
            self.out(self.list_probes(listing))
            return self.finish(print_maps=False)
        if prog_text is None:
            return self.fail(f"nfteach: bpftrace: no program given ({USAGE_HINT})\n", 2)
        self.source, self.filename = prog_text, filename
        try:
            prog = L.parse(prog_text)
            kinds = self.resolve(prog)
            self.rt = Runtime(prog, filename, self.mem, self.out, self.wallclock)
            self.rt.check(kinds, self.tp_fields)
        except L.BtError as e:
            return self.fail(L.format_diag(filename, prog_text, e.loc, e.msg, e.kind))
        self.err("".join(self.warnings))
        n = sum(len(v) for v in self.kprobes.values()) + sum(len(v) for v in self.kretprobes.values()) \
            + sum(len(v) for v in self.tps.values()) + len(self.begin) + len(self.end) + len(self.intervals)
        n += self.failed_attach
        self.out(f"Attaching {n} probe{'s' if n != 1 else ''}...\n")
        if self.attach_errors:
            self.err("".join(self.attach_errors))
            if self.fatal_attach:
                self.status = 255  # BPFtrace::run() returns -1 (measured on 6.1: status 255)
                return self.finish(print_maps=False)
        self.rt.start_ns = self.nsecs()
        trace_state(self.k).bpftrace.append(self)
        self.k.tracer.listeners.append(self.on_event)
        for ix in self.begin:
            self.rt.run_probe(ix, Ctx("BEGIN", comm="bpftrace", pid=self.pid, nsecs=self.nsecs()))
        for ix, secs in self.intervals:
            self.k.schedule(secs, self._tick, ix, secs)
        if self.rt.exited:
            self.finish()

    def wallclock(self) -> _dt.datetime:
        return EPOCH + _dt.timedelta(seconds=self.k.now)

    def nsecs(self) -> int:
        return int(self.k.now * 1e9)

    @property
    def pid(self) -> int:
        return trace_state(self.k).pid_of("bpftrace")

    # -- probes ----------------------------------------------------------------------------
    def model_functions(self) -> Dict[str, str]:
        """kernel symbol -> model function, for the functions this model runs on this kernel."""
        out = {}
        self.unloaded = set()  # symbols of a module that is not loaded: not in kallsyms yet
        for name in trace_state(self.k).known_functions(self.k) - HELPERS:
            sym = self.kd.symbol(name)
            mod = self.kd.module(sym) if sym else ""
            if mod and mod not in self.k.modules.loaded:
                self.unloaded.add(sym)
            elif sym:
                out[sym] = name
        return out

    def resolve(self, prog: L.Program) -> Dict[int, str]:
        kinds: Dict[int, str] = {}
        self.warnings: List[str] = []
        self.attach_errors: List[str] = []
        self.fatal_attach = False
        self.failed_attach = 0
        self.intervals: List[Tuple[int, float]] = []
        self.tp_fields: Dict[int, Tuple[str, list]] = {}
        funcs = self.model_functions()
        for ix, p in enumerate(prog.probes):
            failed_here = []
            for ap, loc in zip(p.attach, p.attach_locs):
                kind, _, rest = ap.partition(":")
                kind = {"k": "kprobe", "kr": "kretprobe", "t": "tracepoint", "i": "interval",
                        "f": "kfunc", "fentry": "kfunc"}.get(kind, kind)
                if ap in ("BEGIN", "END"):
                    (self.begin if ap == "BEGIN" else self.end).append(ix)
                    kinds[ix] = kinds.get(ix, "")
                    continue
                kinds[ix] = kind
                if kind in ("kprobe", "kretprobe"):
                    self._kprobe(ix, kind, rest, ap, loc, funcs, failed_here)
                elif kind == "tracepoint":
                    cat, _, name = rest.partition(":")
                    fields = self.kd.tracepoints.get(name) if cat == "skb" else None
                    if fields is None:
                        raise L.BtError(f"tracepoint not found: {rest}", loc)
                    model = {"kfree_skb": self.k.profile.fn("free_skb") or "kfree_skb",
                             "consume_skb": "consume_skb"}[name]
                    self.tps.setdefault(model, []).append((ix, ap))
                    self.tp_fields[ix] = (f"struct _tracepoint_{cat}_{name}", list(fields))
                elif kind == "interval":
                    unit, _, val = rest.partition(":")
                    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "hz": None}.get(unit)
                    if scale is None or not val.isdigit() or int(val) == 0:
                        raise L.BtError(f"'{ap}' is not in the simulator's bpftrace subset (interval:s:N, interval:ms:N)", loc)
                    self.intervals.append((ix, int(val) * scale))
                elif kind in ("kfunc", "kretfunc"):
                    if not self.kd.kprobes:
                        raise L.BtError("kfunc/kretfunc not available for your kernel version.", None)
                    raise L.BtError(f"'{kind}' probes are not in the simulator's bpftrace subset; use kprobe:", loc)
                else:
                    raise L.BtError(f"Invalid probe type: {kind}" if kind not in (
                        "uprobe", "usdt", "profile", "software", "hardware", "watchpoint", "iter", "rawtracepoint")
                        else f"'{kind}' probes are not in the simulator's bpftrace subset (docs/bpftrace-subset.md)", loc)
            if failed_here:
                multi = len(p.attach) > 1
                for ap in reversed(failed_here):
                    self.attach_errors.extend(self._attach_failure(ap, multi))
                    self.failed_attach += 1
                if not multi:
                    self.fatal_attach = True
        return kinds

    def _kprobe(self, ix, kind, fn, ap, loc, funcs, failed_here) -> None:
        table = self.kprobes if kind == "kprobe" else self.kretprobes
        if "*" in fn or "?" in fn:
            matches = sorted(s for s in funcs if fnmatch.fnmatchcase(s, fn))
            if not matches:
                raise L.BtError(f"No matching functions for {kind}:{fn} among the functions the simulator models", loc)
            for s in matches:
                table.setdefault(funcs[s], []).append((ix, f"{kind}:{s}", s))
            return
        if not self.kd.kprobes:
            self.warnings.append(self._diag(loc, f'{fn} is not traceable (either non-existing, inlined, or marked as '
                                                 f'"notrace"); attaching to it will likely fail', "WARNING"))
            failed_here.append(ap)
            return
        if fn in funcs:
            table.setdefault(funcs[fn], []).append((ix, ap, fn))
            return
        if fn in self.kd.absent or self.kd.model_name(fn) in self.kd.hidden or fn in self.kd.hidden \
                or fn in self.unloaded:
            self.warnings.append(self._diag(loc, f'{fn} is not traceable (either non-existing, inlined, or marked as '
                                                 f'"notrace"); attaching to it will likely fail', "WARNING"))
            failed_here.append(ap)
            return
        near = difflib.get_close_matches(fn, sorted(funcs), n=4, cutoff=0.5)
        hint = f"closest: {', '.join(near)}; " if near else ""
        raise L.BtError(f"the simulator does not run {fn} on kernel {self.k.profile.name} ({hint}"
                        f"bpftrace -l 'kprobe:*' lists the {len(funcs)} it models); run it with --backend vm", loc)

    def _attach_failure(self, ap: str, multi: bool) -> List[str]:
        if not self.kd.kprobes:
            path = f"{self.kd.tracefs}/kprobe_events"
            lines = [f"create_probe_event: open({path}): No such file or directory\n"]
            if multi:
                lines.append(f"WARNING: could not attach probe {ap}, skipping.\n")
                self.detach_errors.append(f"open({path}): No such file or directory\n"
                                          f"ERROR: failed to detach probe: {ap}\n")
            else:
                lines.append(f"ERROR: Error attaching probe: '{ap}'\n")
            return lines
        lines = [ln.replace("{probe}", ap) + "\n" for ln in self.kd.kprobe_missing]
        if multi:
            return lines[:-1] + [f"WARNING: could not attach probe {ap}, skipping.\n"]
        return lines

    def _diag(self, loc, msg, kind) -> str:
        return L.format_diag(self.filename, self.source, loc, msg, kind)

    # -- events ----------------------------------------------------------------------------
    def on_event(self, ev) -> None:
        if self.done or (self.kd.cut and not self.kd.runs(self.k.tracer.stack)):
            return
        # a call inlined at this call site ([trace.hidden] "caller>callee"), or one to a clone
        # of the function there ([trace.symbols_at]): no kprobe on the function fires
        stack = self.k.tracer.stack
        probed = not ((self.kd.hidden_calls and self.kd.hidden_at(stack)) or
                      (self.kd.symbols_at and len(stack) > 1 and (stack[-2], stack[-1]) in self.kd.symbols_at))
        if ev.kind == "entry":
            for ix, ap, sym in self.kprobes.get(ev.function, ()) if probed else ():
                self.fire(ix, ap, ev, sym, f"{sym}+{self.kd.kprobe_offset}")
            for ix, ap in self.tps.get(ev.function, ()):
                self.fire_tp(ix, ap, ev)
        else:
            for ix, ap, sym in self.kretprobes.get(ev.function, ()) if probed else ():
                self.fire(ix, ap, ev, sym, None)
        if self.rt is not None and self.rt.exited:
            self.finish()

    def _ctx_common(self, ev) -> dict:
        st = trace_state(self.k)
        return {"comm": st.comm, "pid": st.pid, "cpu": ev.cpu, "nsecs": int(ev.time * 1e9)}

    def _args(self, fn: str, ev) -> list:
        a = ev.args
        sig = HOOK_SIGNATURE if "priority" in a else SIGNATURES.get(fn, tuple(a))
        out = []
        for name in sig:
            v = a.get(name)
            if name == "skb" and v is not None:
                out.append(self.mem.skb(v))
            elif name == "ct" and v is not None:
                out.append(self.mem.ct(v))
            elif name == "state" and v is not None:
                out.append(self.mem.hook_state(v))
            elif isinstance(v, int):
                out.append(v)
            else:
                out.append(0)
        return out

    def fire(self, ix, ap, ev, sym, top) -> None:
        stack = tuple(self.k.tracer.stack)
        cause = trace_state(self.k).cause_of(stack, ev)
        ctx = Ctx(ap, func=sym, args=self._args(ev.function, ev), **self._ctx_common(ev),
                  kstack=lambda: self.kd.frames(stack, top, cause) if top else ())
        self.rt.run_probe(ix, ctx)

    def fire_tp(self, ix, ap, ev) -> None:
        stack = tuple(self.k.tracer.stack)
        cause = trace_state(self.k).cause_of(stack, ev)
        fields = self.kd.tracepoints.get(ap.rsplit(":", 1)[-1], {})
        skb = ev.args.get("skb")
        vals = {}
        sym = self.kd.symbol(ev.function) or ev.function
        for name in fields:
            if name == "skbaddr":
                vals[name] = self.mem.skb(skb) if skb is not None else 0
            elif name == "location":
                caller = self.kd.symbol(stack[-2]) if len(stack) > 1 else ""
                off = self.kd.offsets.get(f"{caller}>{sym}")
                vals[name] = trace_state(self.k).kaddr(caller, off or 0)
            elif name == "protocol":  # ntohs(skb->protocol): ETH_P_IP, 0 for an AF_UNIX skb
                vals[name] = getattr(skb, "eth_protocol", 0x0800)
            elif name == "reason":
                vals[name] = self.kd.drop_reasons.get(str(ev.args.get("reason", "NOT_SPECIFIED")),
                                                      self.kd.drop_reasons.get("NOT_SPECIFIED", 0))
            else:
                vals[name] = 0
        # the tracepoint's own frame(s); "+?" where its offset was not captured on this kernel yet
        site = self.kd.tp_sites.get(ap.split(":", 1)[1]) or f"{sym}+?"
        tp_struct = "struct _tracepoint_" + ap.split(":", 1)[1].replace(":", "_")
        ctx = Ctx(ap, tp_args=vals, tp_struct=tp_struct, **self._ctx_common(ev),
                  kstack=lambda: self.kd.frames(stack, site, cause) if site else ())
        self.rt.run_probe(ix, ctx)

    def _tick(self, ix, secs) -> None:
        if self.done:
            return
        self.rt.run_probe(ix, Ctx("interval", comm="swapper/0", nsecs=self.nsecs()))
        if self.rt.exited:
            self.finish()
        else:
            self.k.schedule(secs, self._tick, ix, secs)

    # -- end -------------------------------------------------------------------------------
    def finish(self, print_maps: bool = True) -> None:
        if self.done:
            return
        self.done = True
        if self.on_event in self.k.tracer.listeners:
            self.k.tracer.listeners.remove(self.on_event)
        st = trace_state(self.k)
        if self in st.bpftrace:
            st.bpftrace.remove(self)
        if print_maps and self.rt is not None:
            self.rt.exited = False
            for ix in self.end:
                self.rt.run_probe(ix, Ctx("END", comm="bpftrace", pid=self.pid, nsecs=self.nsecs()))
            self.err("".join(self.detach_errors))
            self.out(self.rt.exit_text())

    def stop(self) -> Output:
        self.finish()
        return self.output()

    # -- bpftrace -l -----------------------------------------------------------------------
    def list_probes(self, pattern: str) -> str:
        names = []
        if self.kd.kprobes:
            names += [f"kprobe:{s}" for s in sorted(self.model_functions())]
        names += [f"tracepoint:skb:{t}" for t in sorted(self.kd.tracepoints)]
        if ":" not in pattern:
            pattern = "*:" + pattern if pattern != "*" else "*"
        return "".join(n + "\n" for n in names if fnmatch.fnmatchcase(n, pattern))


def start(kernel, argv, files) -> Session:
    s = Session(kernel, list(argv), files)
    s.start()
    return s


def bpftrace_main(kernel, ns, argv, files=None) -> Output:
    """A foreground ``bpftrace``: it must end by itself (``exit()``, ``-l``, or an error)."""
    s = start(kernel, argv, files or {})
    if s.done:
        return s.output()
    # let the model run until exit(); a program that never exits cannot run in the foreground
    deadline = kernel.now + 60.0
    while not s.done and kernel._events and kernel._events[0][0] <= deadline:
        kernel.run_until(kernel._events[0][0])
    if not s.done:
        s.finish(print_maps=False)
        return Output.of(stderr="nfteach: bpftrace: this program does not call exit(), and a foreground command "
                         "cannot be interrupted in the lab; run it in the background (`sudo bpftrace ... &`) "
                         "and stop it with `kill -INT %1`\n", status=2)
    return s.output()


def bpftrace_wait(kernel, s: Session) -> Output:
    """``wait %N`` on a background bpftrace: the model runs until the program calls exit()."""
    deadline = kernel.now + 60.0
    while not s.done and kernel._events and kernel._events[0][0] <= deadline:
        kernel.run_until(kernel._events[0][0])
    if not s.done:
        return Output.of(stderr="nfteach: wait: this bpftrace program does not call exit(); stop it with "
                         "`kill -INT %N`\n", status=2)
    return s.output()
