"""``[trace.hidden]`` of ``nfteach vm derive``: the modelled functions no trace shows where
the model calls them, and why, read from the kernel build and the guest.

A function the model runs leaves no trace on a kernel when it has no out-of-line copy
(``nm``: a static inline, or inlined at every call), when it is inlined into the caller the
model calls it from and that caller does not call a copy either (the modules' DWARF,
``derive.inlined_in``; ``addr2line -i`` at the call instructions of a vmlinux caller;
``objdump`` for the calls and tail calls), or when its copy is notrace (not in the guest's
``available_filter_functions``). Which function calls which in the model: the simulator's own
stacks on ``MODEL_PATHS``. Hidden at one call only (6.12 inlines ``nf_ct_acct_add`` into
``nf_ct_kill_acct``, not into ``__nf_ct_refresh_acct``): a ``"caller>callee"`` entry.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

from .elf import CLONE, direct_calls


def _clone_of(name: str, symbol: str) -> bool:
    """Is ``name`` a compiler clone of ``symbol`` (``nf_ct_delete.part.0``)?"""
    m = CLONE.match(name)
    return bool(m) and m["base"] == symbol


def inlined_at_calls(file: Path, addr: int, size: int) -> set:
    """Functions inlined at the direct calls of the function at ``addr`` (``addr2line -i``
    over the call instructions: the DWARF inline chain there), for vmlinux, whose DWARF
    ``inlined_in`` does not read whole."""
    at = [a for a, _n, _c in direct_calls(file, addr, size, jumps=True)]
    if not at:
        return set()
    out = subprocess.run(["addr2line", "-i", "-f", "-e", str(file)] + [f"{a:#x}" for a in at],
                         capture_output=True, text=True).stdout.splitlines()
    return {name for name in out[0::2] if name and name != "??"}


#: lab lines that run the model's paths through conntrack, for the calls the model makes
#: (which function calls which): connections to the listener, to a closed port (the RST
#: kills the entry) and to a dropped port, then a flush (which loads ctnetlink), and one
#: more connection and one more RST, whose events go to ctnetlink
MODEL_PATHS = """sudo modprobe nf_conntrack enable_hooks=1
sudo iptables-legacy -A INPUT -p tcp --dport 2571 -j DROP
@host nc -w 1 -z 192.168.122.204 22
@host nc -w 1 -z 192.168.122.204 2570
@host nc -w 1 -z 192.168.122.204 2571
sudo conntrack -F
@host nc -w 1 -z 192.168.122.204 22
@host nc -w 1 -z 192.168.122.204 2570
"""


def model_stacks(kernel: str) -> set:
    """Every stack of model functions the simulator runs on MODEL_PATHS (innermost last)."""
    from ..lab import Lab

    stacks = set()
    with Lab("sim", kernel=kernel) as lab:
        tr = lab.backend.modelled_kernel().tracer
        tr.listeners.append(lambda ev: stacks.add(tuple(tr.stack)) if ev.kind == "entry" else None)
        lab.script(MODEL_PATHS)
    return stacks


def hidden_facts(kernel: str, prof, clones: Dict[str, str], where: Dict[str, tuple],
                 inlined: Dict[str, List[str]], traceable: Optional[set] = None) -> Dict[str, str]:
    """``[trace.hidden]``: model function (or ``"caller>callee"``: at that call only) -> why no
    trace shows it where the model calls it: no out-of-line copy (nm), inlined into the caller
    the model calls it from, which does not call it either (DWARF of the modules;
    ``addr2line -i`` for vmlinux callers; ``objdump`` for the calls), or not in ``traceable``
    (the guest's available_filter_functions: notrace)."""
    from ..sim.kernel.kernel import Kernel
    from ..sim.trace.kdata import KData
    from ..sim.trace.state import trace_state

    kd = KData(prof)
    names = {**prof.extra.get("trace", {}).get("symbols", {}), **clones}

    def copies(f):  # the out-of-line copies of model function f: its symbol and its clones
        s = names.get(f, f)
        return {w for w in where if w == s or _clone_of(w, s)}

    k = Kernel(kernel)
    stacks = sorted(model_stacks(kernel), key=len)
    # what the model runs on this kernel; not what it reaches only under an absent or
    # uncalled function (the reopen path, nf_ct_kill, is not on MODEL_PATHS: all it knows)
    under_cut = {s[-1] for s in stacks} - {s[-1] for s in stacks if kd.runs(s)}
    runs = {f for f in trace_state(k).known_functions(k) if f not in kd.cut and f not in under_cut}
    why: Dict[str, List[str]] = {}
    for f in sorted(runs):
        s = names.get(f, f)
        if not copies(f):
            why.setdefault(f, []).append(f"no out-of-line {s} in vmlinux or the modules (nm)")
        elif traceable is not None and not copies(f) & traceable:
            why.setdefault(f, []).append(f"{s} not in available_filter_functions (notrace)")
    at_calls: Dict[str, set] = {}
    memo: Dict[tuple, bool] = {}

    def inlined_here(stack: tuple) -> bool:
        """Is the innermost call of ``stack`` inlined into the caller a trace shows there?"""
        if stack not in memo:
            f = stack[-1]
            # the caller a trace shows: the nearest model frame that leaves a trace itself
            i = next((i for i in range(len(stack) - 2, -1, -1)
                      if stack[i] not in why and copies(stack[i]) and not inlined_here(stack[:i + 1])), None)
            into = False
            if i is not None and f not in why:
                caller = stack[i]
                cs = names.get(caller, caller)
                cfile, caddr, csize = where[cs if cs in where else sorted(copies(caller))[0]]
                if cfile.name == "vmlinux":
                    if cs not in at_calls:
                        at_calls[cs] = inlined_at_calls(cfile, caddr, csize)
                    into = f in at_calls[cs]
                else:
                    into = caller in inlined.get(f, [])
                into = into and not {c for _a, _n, c in direct_calls(cfile, caddr, csize, jumps=True)} & copies(f)
            memo[stack] = into
        return memo[stack]

    seen: Dict[str, Dict[str, bool]] = {}  # callee -> {model caller: inlined there (on every path)}
    for stack in stacks:
        f = stack[-1]
        if len(stack) < 2 or f not in runs or f in why or not kd.runs(stack):
            continue
        seen.setdefault(f, {})[stack[-2]] = seen.get(f, {}).get(stack[-2], True) and inlined_here(stack)
    for f, callers in sorted(seen.items()):
        there = sorted(c for c, h in callers.items() if h)
        text = "inlined into {} (DWARF), which does not call " + names.get(f, f)
        if there and len(there) == len(callers):
            why.setdefault(f, []).insert(0, text.format(", ".join(there)))
        else:
            for c in there:
                why.setdefault(f"{c}>{f}", []).append(text.format(c))
    return {f: "; ".join(r) for f, r in sorted(why.items())}


_GRAPH = re.compile(r"^\s*\d+\)[^|]*\|(?P<indent>\s*)(?P<fn>[\w.]+)(?: \[\w+\])?\(\)(?P<open> \{)?")


def graph_calls(text: str) -> set:
    """(caller, callee) symbol pairs of a function_graph trace (caller "" at the top level;
    an interrupt's functions nest like calls)."""
    out, stack = set(), []  # stack: (indent, symbol)
    for line in text.splitlines():
        m = _GRAPH.match(line)
        if not m:
            continue
        ind = len(m["indent"])
        while stack and stack[-1][0] >= ind:
            stack.pop()
        out.add((stack[-1][1] if stack else "", m["fn"]))
        if m["open"]:
            stack.append((ind, m["fn"]))
    return out


def site_symbols(kernel: str, prof, clones: Dict[str, str], where: Dict[str, tuple]) -> Dict[str, str]:
    """``[trace.symbols_at]``: ``"caller>callee"`` -> the clone of the callee that the caller
    calls directly (``objdump``) where it does not call the function itself (5.10:
    ``nf_ct_kill_acct`` calls ``nf_ct_delete.part.0``). Model callers and callees from the
    simulator's own stacks on MODEL_PATHS."""
    names = {**prof.extra.get("trace", {}).get("symbols", {}), **clones}
    out: Dict[str, str] = {}
    calls_of: Dict[str, set] = {}
    for stack in sorted(model_stacks(kernel)):
        if len(stack) < 2:
            continue
        caller, callee = stack[-2], stack[-1]
        cs, s = names.get(caller, caller), names.get(callee, callee)
        if cs not in where or s not in where:
            continue
        if cs not in calls_of:
            cfile, caddr, csize = where[cs]
            calls_of[cs] = {c for _a, _n, c in direct_calls(cfile, caddr, csize, jumps=True)}
        clone = sorted(c for c in calls_of[cs] if _clone_of(c, s))
        if clone and s not in calls_of[cs]:
            out[f"{caller}>{callee}"] = clone[0]
    return out
