"""``trace-cmd start -p function_graph -g F`` / ``stop`` / ``show`` / ``reset`` on the
simulator's tracefs (:mod:`nfteach.sim.trace.ftrace`)."""
from __future__ import annotations

from ...model.backend import Output
from ..trace.ftrace import trace_cmd


def main(kernel, ns, argv) -> Output:
    return trace_cmd(kernel, ns, argv)
