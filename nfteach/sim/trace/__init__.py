"""Tracing on the simulator, produced by the model's own execution (nothing canned: docs/simulator.md).

* ``bpftrace`` (a documented subset, docs/bpftrace-subset.md): :mod:`.bpftrace`
* ftrace ``function_graph``, ``trace-cmd``, ``cat .../tracing/trace``: :mod:`.ftrace`
* kernel stacks named and offset as the profile's real kernel: :mod:`.kdata`
* :func:`capture`: the structured trace (:class:`TraceResult`) of one lab command.

>>> from nfteach import Lab
>>> with Lab("sim", kernel="5.10") as lab:
...     _ = lab.run("sudo modprobe nf_conntrack enable_hooks=1")
...     r = capture(lab, "@host nc -w 1 -z 192.168.122.204 2570", ["ipv4_conntrack_in"])
>>> r.functions()[:3]
['ipv4_conntrack_in', 'nf_conntrack_in', 'get_l4proto']
"""
from __future__ import annotations

from typing import Optional, Sequence

from .result import TraceEvent, TraceResult

__all__ = ["capture", "TraceResult", "TraceEvent"]


def capture(lab, line: str, functions: Optional[Sequence[str]] = None) -> TraceResult:
    """Run ``line`` on a ``sim`` lab with function_graph on ``functions`` (kernel symbol
    names; all modelled functions when empty) and return the structured trace.

    The lab's own tracefs settings are left as they were.
    """
    from .ftrace import Tracefs

    backend = lab.backend
    if getattr(backend, "name", "") != "sim":
        raise ValueError(f"capture() needs the sim backend, not {backend.name!r}; on vm use trace-cmd")
    lab.start()
    k = backend.k
    fs = Tracefs(k)
    fs.set_tracer("function_graph", list(functions or []))
    try:
        lab.run(line)
    finally:
        fs.tracing_on = False
        records = list(fs.records)
        if fs.on_event in k.tracer.listeners:
            k.tracer.listeners.remove(fs.on_event)
    return TraceResult(records, k.profile.ncpus)
