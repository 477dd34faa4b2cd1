"""``bpftrace``: a subset of the language (docs/bpftrace-subset.md) on the model's own
functions; the runtime is :mod:`nfteach.sim.trace`."""
from __future__ import annotations

from ...model.backend import Output
from ..trace.bpftrace import bpftrace_main


def main(kernel, ns, argv) -> Output:
    return bpftrace_main(kernel, ns, argv, getattr(kernel, "files", {}))
