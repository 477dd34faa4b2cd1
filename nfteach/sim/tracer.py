"""Entry/exit events of modelled kernel functions (the source of every trace on ``sim``).

Model code wraps each kernel function it models in ``with tracer.call("name", **args):``.
When nobody listens this costs one attribute check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List


@dataclass(frozen=True)
class TraceEvent:
    time: float
    cpu: int
    kind: str  # "entry" | "exit"
    function: str
    depth: int
    args: Dict[str, object] = field(default_factory=dict)


class _Null:
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL = _Null()


class _Frame:
    __slots__ = ("tracer", "name", "args")

    def __init__(self, tracer, name, args):
        self.tracer, self.name, self.args = tracer, name, args

    def __enter__(self):
        t = self.tracer
        t.stack.append(self.name)
        t.emit("entry", self.name, self.args)
        return self

    def __exit__(self, *exc):
        t = self.tracer
        t.emit("exit", self.name, self.args)
        t.stack.pop()
        return False


class Tracer:
    def __init__(self, kernel):
        self.kernel = kernel
        self.listeners: List[Callable[[TraceEvent], None]] = []
        self.stack: List[str] = []

    @property
    def on(self) -> bool:
        return bool(self.listeners)

    def call(self, name: str, **args):
        if not self.listeners:
            return _NULL
        return _Frame(self, name, args)

    def emit(self, kind: str, name: str, args) -> None:
        ev = TraceEvent(self.kernel.now, self.kernel.cpu, kind, name, len(self.stack) - (1 if kind else 0), args)
        for cb in list(self.listeners):
            cb(ev)
