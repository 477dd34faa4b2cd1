"""Entry/exit events of modelled kernel functions (the source of every trace on ``sim``).

Model code wraps each kernel function it models in ``with self._t("name", **args):`` (a
frame: an entry event, the body, an exit event). Classes decorated with
:func:`untraced_branch` also get, in every method that opens frames, a first branch taken
when nobody listens: the same body with the frames left out (see :func:`untraced_branch`),
so tracing off costs one attribute check per modelled function, not one frame per call.
"""
from __future__ import annotations
import __future__

import ast
import hashlib
import importlib.util
import inspect
import marshal
import os
import sys
from typing import Callable, Dict, List, NamedTuple, Optional, Set


class CallEvent(NamedTuple):
    """The entry or exit of a modelled kernel function, as listeners get it (immutable; a
    NamedTuple: made in one C call, ~120 of them per traced SYN). ftrace's records made from
    these are :class:`nfteach.sim.trace.result.TraceEvent`."""

    time: float
    cpu: int
    kind: str  # "entry" | "exit"
    function: str
    depth: int
    args: Dict[str, object] = {}


_event = tuple.__new__


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
        self.listeners: List[Callable[[CallEvent], None]] = []
        self.stack: List[str] = []

    @property
    def on(self) -> bool:
        return bool(self.listeners)

    def call(self, name: str, **args):
        if not self.listeners:
            return _NULL
        return _Frame(self, name, args)

    def emit(self, kind: str, name: str, args) -> None:
        k = self.kernel
        ev = _event(CallEvent, (k.now, k.cpu, kind, name, len(self.stack) - (1 if kind else 0), args))
        for cb in list(self.listeners):
            cb(ev)


# -- the tracing-off branch ---------------------------------------------------------------
def _is_frame(expr: ast.expr) -> bool:
    """``self._t(...)``, ``_NULL``, or ``(_NULL if ... else self._t(...))``: a trace frame."""
    if isinstance(expr, ast.Name):
        return expr.id == "_NULL"
    if isinstance(expr, ast.IfExp):
        return _is_frame(expr.body) and _is_frame(expr.orelse)
    return (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "_t"
            and isinstance(expr.func.value, ast.Name) and expr.func.value.id == "self")


def _is_trace_with(node: ast.AST) -> bool:
    return isinstance(node, ast.With) and all(_is_frame(i.context_expr) and i.optional_vars is None
                                              for i in node.items)


def _self_call(node: ast.stmt) -> Optional[str]:
    """The method name of a statement ``self.name()``, else None."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not node.value.args \
            and not node.value.keywords and isinstance(node.value.func, ast.Attribute) \
            and isinstance(node.value.func.value, ast.Name) and node.value.func.value.id == "self":
        return node.value.func.attr
    return None


def _only_frames(stmts: List[ast.stmt], trace_only: Set[str]) -> bool:
    """True if running ``stmts`` does nothing but open frames (nothing left once stripped)."""
    for node in stmts:
        if isinstance(node, ast.Pass) or _self_call(node) in trace_only:
            continue
        if _is_trace_with(node) or (isinstance(node, ast.If) and not node.orelse):
            if _only_frames(node.body, trace_only):
                continue
        return False
    return True


class _Strip(ast.NodeTransformer):
    """Replace each trace frame by its body; leave out calls of methods that only trace.
    Changes the tree it is given (a parse of its own)."""

    def __init__(self, trace_only: Set[str]):
        self.trace_only = trace_only

    def stmts(self, body: List[ast.stmt]) -> List[ast.stmt]:
        out: List[ast.stmt] = []
        for node in body:
            if _is_trace_with(node):
                out.extend(self.stmts(node.body))
            elif _self_call(node) in self.trace_only:
                continue
            elif isinstance(node, ast.If) and not node.orelse and _only_frames(node.body, self.trace_only):
                continue  # an `if` that only decides which frames open (its test changes nothing)
            else:
                out.append(self.visit(node))
        return [s for s in out if not isinstance(s, ast.Pass)]

    def generic_visit(self, node):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                setattr(node, name, self.stmts(block) or ([ast.Pass()] if name == "body" else []))
        for h in getattr(node, "handlers", None) or []:
            self.visit(h)
        return node


def _split_doc(body: List[ast.stmt]):
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[:1], body[1:]
    return [], body


def untraced_branch(cls):
    """Class decorator: a tracing-off branch in every method that opens trace frames.

    Each such method ``f`` becomes ``if not self.tracer.listeners: <f's body without
    frames>; return`` followed by its original body. "Without frames": every ``with
    self._t(...):`` (or ``with _NULL``, or a conditional of the two) is replaced by the
    statements inside it, a call ``self.g()`` of a method ``g`` that does nothing but
    open frames is left out, and so is an ``if`` (without ``else``) whose body only opens
    frames (such a test only decides which frames open; it must not change the model).
    Every other statement runs as written, so the model does the same work whether or not
    someone listens; only the entry/exit events are skipped
    (``tests/unit/test_untraced_branch.py`` checks both ways end in the same state).
    The methods are recompiled from the module's source at their own line numbers, inside
    a class of the same name (so ``self.__name`` is mangled as in the original); the class
    reads the tracer as ``self.tracer``.
    """
    mod = sys.modules[cls.__module__]
    try:
        src = inspect.getsource(mod)
    except (OSError, TypeError):  # no source (a frozen or .pyc-only install): frames stay, only slower
        return cls
    made = _cached(cls, mod, src)
    if made is None:
        made = _build(cls, mod, src)
        _store(cls, mod, src, made)
    code, names, trace_only = made
    ns: Dict[str, object] = {}
    exec(code, mod.__dict__, ns)
    for name in names:
        new, old = ns[cls.__name__].__dict__[name], cls.__dict__[name]
        new.__qualname__, new.__doc__ = old.__qualname__, old.__doc__
        setattr(cls, name, new)
    cls.trace_only_methods = frozenset(trace_only)
    return cls


def _build(cls, mod, src):
    """(code of a class holding the rewritten methods, their attribute names, trace-only names)."""

    def methods(tree):
        cdef = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
        return cdef, {n.name: n for n in cdef.body if isinstance(n, ast.FunctionDef) and not n.decorator_list
                      and any(_is_trace_with(x) for x in ast.walk(n))}

    cdef, fns = methods(ast.parse(src))
    _, fast_fns = methods(ast.parse(src))  # a second parse: the frameless copies (cheaper than deepcopy)
    trace_only = {name for name, fn in fns.items() if _only_frames(_split_doc(fn.body)[1], set())}
    for name, fn in fns.items():
        doc, body = _split_doc(fn.body)
        fast = _Strip(trace_only).stmts(_split_doc(fast_fns[name].body)[1]) + [ast.Return(value=None)]
        listeners = ast.Attribute(value=ast.Attribute(value=ast.Name(id="self", ctx=ast.Load()), attr="tracer",
                                                      ctx=ast.Load()), attr="listeners", ctx=ast.Load())
        branch = ast.copy_location(ast.If(test=ast.UnaryOp(op=ast.Not(), operand=listeners), body=fast, orelse=[]),
                                   body[0])
        fn.body = doc + [branch] + body
    holder = ast.copy_location(ast.ClassDef(name=cls.__name__, bases=[], keywords=[], body=list(fns.values()),
                                            decorator_list=[]), cdef)
    module = ast.fix_missing_locations(ast.Module(body=[holder], type_ignores=[]))
    code = compile(module, mod.__file__, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    names = []
    for name in fns:
        if name.startswith("__") and not name.endswith("__"):
            name = f"_{cls.__name__.lstrip('_')}{name}"  # private name mangling
        names.append(name)
    return code, names, sorted(trace_only)


# The rewrite costs ~30 ms per module, so its result is kept next to the module's .pyc,
# keyed by the interpreter, this file, the module's path and its source.
def _cache_path(cls, mod) -> Optional[str]:
    try:
        pyc = importlib.util.cache_from_source(mod.__file__)
    except (NotImplementedError, ValueError, TypeError):
        return None
    return f"{pyc[:-4]}.{cls.__name__}-untraced.bin"


def _cache_key(mod, src: str) -> bytes:
    with open(__file__, "rb") as f:
        me = f.read()
    return hashlib.sha256(b"\0".join((sys.version.encode(), me, mod.__file__.encode(), src.encode()))).digest()


def _cached(cls, mod, src):
    path = _cache_path(cls, mod)
    try:
        with open(path, "rb") as f:
            data = f.read()
        key = _cache_key(mod, src)
        if data[:len(key)] == key:
            return marshal.loads(data[len(key):])
    except (OSError, TypeError, ValueError, EOFError):
        pass
    return None


def _store(cls, mod, src, made) -> None:
    path = _cache_path(cls, mod)
    if path is None:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(_cache_key(mod, src) + marshal.dumps(made))
        os.replace(tmp, path)
    except OSError:  # a read-only install: rewrite on every import
        try:
            os.unlink(tmp)
        except OSError:
            pass
