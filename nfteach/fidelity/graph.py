"""What a ``function_graph`` trace says, with what only timing decides left out: the call
tree of each packet, in order, for comparing the model's trace with a real kernel's.

A real trace carries noise the model does not have: timer interrupts and IPIs that land
inside a traced call (and the slab allocator's slow path), the scheduler finishing a task
switch under the tracer (``finish_task_switch() {``, ``__mmdrop() {`` at the top level), a
graph that starts inside a call (the next calls indented too deep), and one session packet
more or less between ``trace-cmd start`` and ``stop``. :func:`call_tree` drops the first
kinds (reading depth from the braces, not the indentation); :func:`packets` counts a run of
equal packets once.
"""
from __future__ import annotations

import re
from typing import Iterable, List, Optional, Tuple

#: interrupt entries that land inside a real function_graph (timer ticks, IPIs on a slow TCG
#: guest): they and everything under them are left out, the model has none
INTERRUPT_NOISE = re.compile(r"^(irq_enter|irq_exit|__sysvec_|sysvec_|asm_sysvec_|"
                             # softirqs run where bottom halves are enabled again (timers, RCU;
                             # a packet's own processing in there is lifted out, see call_tree)
                             r"do_softirq|__do_softirq|handle_softirqs|"
                             # the slab allocator's slow path: a new slab page for the cache
                             # (allocator state, not the packet's path: 5.10 __slab_alloc, 6.12 ___slab_alloc)
                             r"__?_slab_alloc|"
                             # get_random_u8's per-cpu batch ran out and is refilled (RNG state)
                             r"_get_random_bytes)")
#: the scheduler's return into a task switched out while the tracer was off: function_graph
#: opens it where the task resumes (``finish_task_switch() {``, 5.10 and 6.1 guests) and nests
#: what the task runs next under it; left out, its calls moved up one level
SCHEDULER_RESUME = re.compile(r"^finish_task_switch(\.\w+\.\d+)?$")
_ENTRY = re.compile(r"^\s*\d+\)[^|]*\|\s+([\w.]+)(?: \[\w+\])?\(\)( \{)?")
_EXIT = re.compile(r"^\s*\d+\)[^|]*\|\s+\}")
HEADER = "# tracer: function_graph"

Tree = List[Tuple[int, str]]


def call_tree(text: str, roots: Optional[Iterable[str]] = None) -> Tree:
    """[(depth, function)] of a function_graph, interrupt noise (and its subtree) left out;
    with ``roots`` (the functions of ``-g``), a top-level call of anything else too: what a
    task the scheduler switched in finishes under the tracer (6.1: ``__mmdrop() {``), and a
    root called inside noise (a packet received in a softirq that ran at a bottom-half enable)
    is lifted out to the top level, where the model calls it."""
    roots = set(roots or ())
    out: Tree = []
    stack: List[Tuple[str, int]] = []  # open calls: ("keep", depth) | ("noise", 0) | ("resume", 0)
    for ln in text.splitlines():
        if _EXIT.match(ln):
            if stack:
                stack.pop()
            continue
        m = _ENTRY.match(ln)
        if not m:
            continue
        name, opens = m.group(1), bool(m.group(2))
        inner = next((f for f in reversed(stack) if f[0] != "resume"), None)
        in_noise = inner is not None and inner[0] == "noise"
        depth = inner[1] + 1 if inner is not None and inner[0] == "keep" else 0
        if roots and name in roots and in_noise:
            frame = ("keep", 0)
        elif in_noise or INTERRUPT_NOISE.match(name) or (
                roots and not depth and name not in roots and not SCHEDULER_RESUME.match(name)):
            frame = ("noise", 0)
        elif SCHEDULER_RESUME.match(name):
            frame = ("resume", 0)
        else:
            frame = ("keep", depth)
        if frame[0] == "keep":
            out.append((frame[1], name))
        if opens:
            stack.append(frame)
    return out


#: calls a kernel repeats at random: __nf_conntrack_confirm's get_random_u32_below(24) (6.1+:
#: MAX_CHAINLEN - MIN_CHAINLEN) rejects a draw of get_random_u8 with probability 16/256 and
#: draws again (seen on vm 6.1, seed 2 script 163); a run of them counts once
RANDOM_RETRY = frozenset({"get_random_u8"})


def packets(tree: Tree) -> List[tuple]:
    """The call trees of one packet each (a top-level call and what it ran), a run of equal
    ones counted once: how many of the session's packets land between ``trace-cmd start``
    and ``stop`` is timing (one keystroke more or less on a real guest)."""
    out: List[list] = []
    for depth, name in tree:
        if depth == 0:
            out.append([])
        if out and not (name in RANDOM_RETRY and out[-1] and out[-1][-1] == (name, depth)):
            out[-1].append((name, depth))
    trees = [tuple(p) for p in out]
    return [p for i, p in enumerate(trees) if i == 0 or p != trees[i - 1]]


def is_graph(output: str) -> bool:
    return output.startswith(HEADER + "\n")


def same_graph(model: str, real: str) -> bool:
    """Do two function_graph traces make the same calls, packet by packet? The model's
    top-level functions are the roots (it has no noise of its own)."""
    mine = call_tree(model)
    roots = {n for d, n in mine if d == 0}
    return packets(mine) == packets(call_tree(real, roots))
