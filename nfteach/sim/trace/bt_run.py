"""Running a parsed bpftrace program: values, maps, builtins, ``printf`` — output as bpftrace 0.17.

Semantic checks run once before attaching (as bpftrace's semantic analyser does), so an
unknown function or variable is reported with its location and nothing runs.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from . import bt_lang as L
from .bt_mem import STRUCTS, VIRTUAL, Inet, KStack, Memory, Ptr, struct_known
from .bt_mem import sizeof as _sizeof

MASK64 = (1 << 64) - 1
ARITH = {"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"}
AGGS = {"count", "sum", "min", "max", "avg"}
SUPPORTED_CALLS = {"printf", "time", "ntop", "kstack", "exit", "print", "clear", "zero", "delete", "str",
                   "bswap", "ksym", *AGGS}
NOT_IN_SUBSET = {"hist", "lhist", "stats", "ustack", "system", "cat", "signal", "override", "join",
                 "buf", "kptr", "uptr", "reg", "usym", "uaddr", "kaddr", "cgroupid", "strftime", "path",
                 "macaddr", "sizeof", "offsetof", "strncmp", "strcontains", "skboutput", "cgroup_path",
                 "unwatch", "debugf", "len", "has_key", "pton"}
BUILTINS = {"pid", "tid", "uid", "gid", "nsecs", "elapsed", "cpu", "comm", "func", "probe", "retval",
            "args", "kstack", "curtask", "rand", "cgroup", "username", "ustack", "sarg0"} | {f"arg{i}" for i in range(10)}


def s64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


class Exit(Exception):
    """``exit()`` was called."""


@dataclass
class Agg:
    kind: str
    n: int = 0
    total: int = 0
    lo: Optional[int] = None
    hi: Optional[int] = None

    def add(self, v: int = 1) -> None:
        self.n += 1
        self.total += v
        self.lo = v if self.lo is None else min(self.lo, v)
        self.hi = v if self.hi is None else max(self.hi, v)

    @property
    def value(self) -> int:
        return {"count": self.n, "sum": self.total, "min": self.lo or 0, "max": self.hi or 0,
                "avg": (self.total // self.n) if self.n else 0}[self.kind]


@dataclass
class Ctx:
    """What a probe sees when it fires."""

    probe: str
    func: str = ""
    args: List[object] = field(default_factory=list)
    tp_args: Dict[str, object] = field(default_factory=dict)
    tp_struct: str = ""
    retval: int = 0
    comm: str = "swapper/0"
    pid: int = 0
    cpu: int = 0
    nsecs: int = 0
    kstack: Callable[[], Tuple[str, ...]] = lambda: ()


def fmt_value(v) -> str:
    if isinstance(v, Agg):
        return str(v.value)
    if isinstance(v, KStack):
        return v.text()
    if isinstance(v, Ptr):
        return str(v.addr)
    if isinstance(v, bytes):
        return v.split(b"\0", 1)[0].decode(errors="replace")
    return str(v)


def fmt_key(keys: Tuple) -> str:
    return ", ".join(fmt_value(k) for k in keys)


class Runtime:
    """One bpftrace process: the program, its maps, its output."""

    def __init__(self, prog: L.Program, filename: str, mem: Memory, write: Callable[[str], None],
                 wallclock: Callable[[], _dt.datetime]):
        self.prog, self.filename, self.mem, self.write = prog, filename, mem, write
        self.wallclock = wallclock
        self.maps: Dict[str, Dict[Tuple, object]] = {}
        self.map_scalar: Dict[str, bool] = {}
        self.map_kind: Dict[str, str] = {}
        self.exited = False
        self.start_ns = 0

    # -- semantic analysis -------------------------------------------------------------
    def check(self, probe_kinds: Dict[int, str], tp_fields: Optional[Dict[int, Tuple[str, list]]] = None) -> None:
        """Raise :class:`BtError` for what bpftrace's semantic analyser would refuse."""
        self._tp_fields = tp_fields or {}
        for i, p in enumerate(self.prog.probes):
            kind = probe_kinds.get(i, "")
            self._tp = self._tp_fields.get(i)
            seen: Dict[str, Optional[str]] = {}
            if p.pred is not None:
                self._check_expr(p.pred, seen, kind)
            self._check_block(p.body, seen, kind)

    def _static_pointee(self, e, seen) -> Optional[str]:
        if isinstance(e, L.Cast) and e.ctype.endswith("*"):
            return e.ctype[:-1].strip()
        if isinstance(e, L.Var):
            return seen.get(e.name)
        if isinstance(e, L.Field) and isinstance(e.expr, L.Ident) and e.expr.name == "args":
            return None
        if isinstance(e, L.Field):
            base = self._static_pointee(e.expr, seen)
            fields = (STRUCTS.get(base) or VIRTUAL.get(base)) if base else None
            f = fields.get(e.name) if fields else None
            return f.pointee if f else None
        return None

    def _check_field(self, e: L.Field, seen) -> None:
        if isinstance(e.expr, L.Ident) and e.expr.name == "args":
            if self._tp is not None and e.name not in self._tp[1]:
                raise L.BtError(f"Struct/union of type '{self._tp[0]}' does not contain a field named '{e.name}'", e.loc)
            return
        base = self._static_pointee(e.expr, seen)
        if not base:
            return
        fields = STRUCTS.get(base) or VIRTUAL.get(base)
        if fields is None:
            if struct_known(base):
                raise L.BtError(f"the fields of '{base}' are not modelled by the simulator; run it with --backend vm", e.loc)
            return
        if e.name not in fields:
            if base in VIRTUAL:
                raise L.BtError(f"field '{e.name}' of '{base}' is not modelled by the simulator "
                                f"(modelled: {', '.join(fields)}); run it with --backend vm", e.loc)
            raise L.BtError(f"Struct/union of type '{base}' does not contain a field named '{e.name}'", e.loc)

    def _check_block(self, stmts, seen, kind) -> None:
        for s in stmts:
            if isinstance(s, L.Assign):
                self._check_expr(s.value, seen, kind, top_assign=isinstance(s.target, L.Map))
                if isinstance(s.target, L.Var):
                    if s.op != "=" and s.target.name not in seen:
                        raise L.BtError(f"Undefined or undeclared variable: {s.target.name}", s.target.loc)
                    seen[s.target.name] = self._static_pointee(s.value, seen)
                else:
                    for k in s.target.keys:
                        self._check_expr(k, seen, kind)
                    self._note_map(s.target, s.value)
            elif isinstance(s, L.If):
                self._check_expr(s.cond, seen, kind)
                self._check_block(s.then, seen, kind)
                self._check_block(s.orelse, seen, kind)
            else:
                self._check_expr(s.expr, seen, kind, statement=True)

    def _note_map(self, m: L.Map, value) -> None:
        scalar = not m.keys
        prev = self.map_scalar.setdefault(m.name, scalar)
        if prev != scalar:
            raise L.BtError(f"Argument mismatch for {m.name}: trying to access with no arguments when map expects arguments"
                            if scalar else f"Argument mismatch for {m.name}: trying to access with arguments when map expects no arguments", m.loc)
        if isinstance(value, L.Call) and value.name in AGGS:
            self.map_kind[m.name] = value.name
        else:
            self.map_kind.setdefault(m.name, "value")
        self.maps.setdefault(m.name, {})

    def _check_expr(self, e, seen, kind, statement=False, top_assign=False) -> None:
        if isinstance(e, L.Var):
            if e.name not in seen:
                raise L.BtError(f"Undefined or undeclared variable: {e.name}", e.loc)
        elif isinstance(e, L.Ident):
            if e.name not in BUILTINS:
                raise L.BtError(f"Unknown identifier: '{e.name}'", e.loc)
            if e.name in ("curtask", "cgroup", "username", "ustack", "sarg0"):
                raise L.BtError(f"{e.name} is not in the simulator's bpftrace subset (docs/bpftrace-subset.md)", e.loc)
            if e.name == "func" and kind == "tracepoint":
                raise L.BtError("The func builtin can not be used with 'tracepoint' probes", e.loc)
            if e.name == "args" and kind != "tracepoint":
                raise L.BtError("The args builtin can only be used with tracepoint/kfunc/uprobeprobes (" + kind + " used here)", e.loc)
            if e.name == "retval" and kind != "kretprobe":
                raise L.BtError("The retval builtin can only be used with 'kretprobe' and 'uretprobe' and 'kfunc' probes (" + kind + " used here)", e.loc)
            if e.name.startswith("arg") and e.name[3:].isdigit() and kind not in ("kprobe", ""):
                raise L.BtError(f"The {e.name} builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes", e.loc)
        elif isinstance(e, L.Call):
            if e.name in NOT_IN_SUBSET:
                raise L.BtError(f"{e.name}() is not in the simulator's bpftrace subset (docs/bpftrace-subset.md); "
                                "run it with --backend vm", e.loc)
            if e.name not in SUPPORTED_CALLS:
                raise L.BtError(f"Unknown function: {e.name}", (e.loc[0], e.loc[1], e.loc[0], e.loc[1] + len(e.name)))
            if e.name in AGGS and not top_assign:
                raise L.BtError(f"{e.name}() should be directly assigned to a map", e.loc)
            for a in e.args:
                if not (e.name in ("print", "clear", "zero", "delete") and isinstance(a, L.Map)):
                    self._check_expr(a, seen, kind)
                elif a.keys:
                    for k in a.keys:
                        self._check_expr(k, seen, kind)
            if e.name == "printf":
                self._check_printf(e, seen)
        elif isinstance(e, L.Map):
            for k in e.keys:
                self._check_expr(k, seen, kind)
        elif isinstance(e, L.Binop):
            self._check_expr(e.left, seen, kind)
            self._check_expr(e.right, seen, kind)
        elif isinstance(e, L.Unop):
            if e.op == "&":
                raise L.BtError("'&' (address-of) is not in the simulator's bpftrace subset (docs/bpftrace-subset.md)", e.loc)
            self._check_expr(e.expr, seen, kind)
        elif isinstance(e, L.Ternary):
            for x in (e.cond, e.a, e.b):
                self._check_expr(x, seen, kind)
        elif isinstance(e, L.Cast):
            self._check_cast(e)
            self._check_expr(e.expr, seen, kind)
        elif isinstance(e, (L.Field, L.Index)):
            self._check_expr(e.expr, seen, kind)
            if isinstance(e, L.Field):
                self._check_field(e, seen)
            if isinstance(e, L.Index):
                self._check_expr(e.index, seen, kind)

    def _check_cast(self, e: L.Cast) -> None:
        t = e.ctype
        if t.startswith(("struct ", "union ")):
            name = t.rstrip(" *")
            if not struct_known(name):
                raise L.BtError(f"Unknown struct/union: '{name}'", (e.loc[0], e.loc[1], e.loc[0], e.loc[1] + len(t) + 2))
            if not t.endswith("*"):
                raise L.BtError(f"Cannot cast to \"{t}\"", e.loc)

    def _check_printf(self, e: L.Call, seen) -> None:
        if not e.args or not isinstance(e.args[0], L.Str):
            raise L.BtError("printf() expects a string literal as first argument", e.loc)
        specs = _specs(e.args[0].value)
        if len(specs) != len(e.args) - 1:
            raise L.BtError(f"printf: Number of arguments ({len(e.args) - 1}) does not match the number of format "
                            f"specifiers ({len(specs)})" if len(specs) > len(e.args) - 1 else
                            f"printf: Too many arguments for format string ({len(e.args) - 1} supplied, {len(specs)} expected)", e.loc)
        for spec, a in zip(specs, e.args[1:]):
            st = _static_kind(a)
            if spec[-1] == "s" and st == "int":
                raise L.BtError("printf: %s specifier expects a value of type string (integer supplied)", e.loc)
            if spec[-1] in "diuxXcp" and st == "string":
                raise L.BtError(f"printf: %{spec[-1]} specifier expects a value of type integer (string supplied)", e.loc)

    # -- running -------------------------------------------------------------------------
    def run_probe(self, index: int, ctx: Ctx) -> None:
        if self.exited:
            return
        p = self.prog.probes[index]
        env: Dict[str, object] = {}
        try:
            if p.pred is not None and not _truth(self.eval(p.pred, env, ctx)):
                return
            self.exec_block(p.body, env, ctx)
        except Exit:
            self.exited = True

    def exec_block(self, stmts, env, ctx) -> None:
        for s in stmts:
            if isinstance(s, L.Assign):
                self.assign(s, env, ctx)
            elif isinstance(s, L.If):
                if _truth(self.eval(s.cond, env, ctx)):
                    self.exec_block(s.then, env, ctx)
                else:
                    self.exec_block(s.orelse, env, ctx)
            else:
                self.eval(s.expr, env, ctx)

    def assign(self, s: L.Assign, env, ctx) -> None:
        t = s.target
        if isinstance(t, L.Map) and isinstance(s.value, L.Call) and s.value.name in AGGS:
            key = tuple(self.key(k, env, ctx) for k in t.keys)
            m = self.maps.setdefault(t.name, {})
            agg = m.get(key)
            if not isinstance(agg, Agg):
                agg = m[key] = Agg(s.value.name)
            v = 1 if s.value.name == "count" else _int(self.eval(s.value.args[0], env, ctx)) if s.value.args else 0
            agg.add(v)
            return
        val = self.eval(s.value, env, ctx)
        if s.op != "=":
            cur = env.get(t.name, 0) if isinstance(t, L.Var) else self.maps.get(t.name, {}).get(
                tuple(self.key(k, env, ctx) for k in t.keys), 0)
            val = _binop(s.op[:-1], cur, val)
        if isinstance(t, L.Var):
            env[t.name] = val
        else:
            key = tuple(self.key(k, env, ctx) for k in t.keys)
            self.maps.setdefault(t.name, {})[key] = val

    def key(self, e, env, ctx):
        v = self.eval(e, env, ctx)
        if isinstance(v, bytes):
            return v.split(b"\0", 1)[0].decode(errors="replace")
        return v

    def eval(self, e, env, ctx):  # noqa: C901 - one dispatch over the AST
        if isinstance(e, L.Int):
            return e.value
        if isinstance(e, L.Str):
            return e.value
        if isinstance(e, L.Var):
            return env[e.name]
        if isinstance(e, L.Map):
            key = tuple(self.key(k, env, ctx) for k in e.keys)
            v = self.maps.get(e.name, {}).get(key, 0)
            return v.value if isinstance(v, Agg) else v
        if isinstance(e, L.Ident):
            return self.builtin(e.name, ctx)
        if isinstance(e, L.Binop):
            if e.op == "&&":
                return int(_truth(self.eval(e.left, env, ctx)) and _truth(self.eval(e.right, env, ctx)))
            if e.op == "||":
                return int(_truth(self.eval(e.left, env, ctx)) or _truth(self.eval(e.right, env, ctx)))
            return _binop(e.op, self.eval(e.left, env, ctx), self.eval(e.right, env, ctx))
        if isinstance(e, L.Unop):
            v = self.eval(e.expr, env, ctx)
            if e.op == "!":
                return int(not _truth(v))
            if e.op == "~":
                return s64(~_int(v))
            if e.op == "-":
                return s64(-_int(v))
            if e.op == "*":
                if isinstance(v, Ptr):
                    return int.from_bytes(self.mem.read_bytes(v.addr, min(_sizeof(v.pointee), 8)), "little")
                return 0
            raise L.BtError("'&' (address-of) is not in the simulator's bpftrace subset", e.loc)
        if isinstance(e, L.Ternary):
            return self.eval(e.a if _truth(self.eval(e.cond, env, ctx)) else e.b, env, ctx)
        if isinstance(e, L.Cast):
            return self.cast(e, self.eval(e.expr, env, ctx))
        if isinstance(e, L.Field):
            return self.field(e, self.eval(e.expr, env, ctx), ctx)
        if isinstance(e, L.Index):
            base, ix = self.eval(e.expr, env, ctx), _int(self.eval(e.index, env, ctx))
            if isinstance(base, bytes):
                return base[ix] if 0 <= ix < len(base) else 0
            if isinstance(base, Ptr):
                n = _sizeof(base.pointee)
                return int.from_bytes(self.mem.read_bytes(base.addr + ix * n, min(n, 8)), "little")
            raise L.BtError("The array index operator [] can only be used on arrays and pointers", e.loc)
        if isinstance(e, L.Call):
            return self.call(e, env, ctx)
        raise L.BtError("expression not in the simulator's bpftrace subset", e.loc)

    def builtin(self, name: str, ctx: Ctx):
        if name.startswith("arg") and name[3:].isdigit():
            i = int(name[3:])
            return ctx.args[i] if i < len(ctx.args) else 0
        if name == "func":
            return ctx.func
        if name == "probe":
            return ctx.probe
        if name == "comm":
            return ctx.comm
        if name in ("pid", "tid"):
            return ctx.pid
        if name in ("uid", "gid"):
            return 0
        if name == "cpu":
            return ctx.cpu
        if name == "nsecs":
            return ctx.nsecs
        if name == "elapsed":
            return ctx.nsecs - self.start_ns
        if name == "retval":
            return ctx.retval
        if name == "kstack":
            return KStack(ctx.kstack(), self.mem.kstack_indent)
        if name == "rand":
            return 4
        if name == "args":
            return ("args", ctx)
        return 0

    def cast(self, e: L.Cast, v):
        t = e.ctype
        if t.endswith("*"):
            pointee = t[:-1].strip()
            addr = v.addr if isinstance(v, Ptr) else _int(v)
            return Ptr(addr & MASK64, pointee)
        if t in L.INT_TYPES:
            size, signed = L.INT_TYPES[t]
            x = _int(v) & ((1 << (8 * size)) - 1)
            if signed and x >> (8 * size - 1):
                x -= 1 << (8 * size)
            return x
        raise L.BtError(f"Cannot cast to \"{t}\"", e.loc)

    def field(self, e: L.Field, v, ctx):
        if isinstance(v, tuple) and v and v[0] == "args":
            c = v[1]
            if e.name not in c.tp_args:
                raise L.BtError(f"Struct/union of type '{c.tp_struct}' does not contain a field named '{e.name}'", e.loc)
            return c.tp_args[e.name]
        if not isinstance(v, Ptr):
            raise L.BtError(f"Can not access field '{e.name}' on expression of type 'int64'", e.loc)
        if not e.arrow:
            raise L.BtError(f"Can not access field '{e.name}' on type '{v.pointee} *'. Try dereferencing it first, or using '->'", e.loc)
        fields = STRUCTS.get(v.pointee) or VIRTUAL.get(v.pointee)
        if fields is None:
            if struct_known(v.pointee):
                raise L.BtError(f"the fields of '{v.pointee}' are not modelled by the simulator; "
                                "run it with --backend vm", e.loc)
            raise L.BtError(f"Can not access field '{e.name}' on type '{v.pointee} *'", e.loc)
        f = fields.get(e.name)
        if f is None:
            if v.pointee in VIRTUAL:
                raise L.BtError(f"field '{e.name}' of '{v.pointee}' is not modelled by the simulator "
                                f"(modelled: {', '.join(fields)}); run it with --backend vm", e.loc)
            raise L.BtError(f"Struct/union of type '{v.pointee}' does not contain a field named '{e.name}'", e.loc)
        return self.mem.read_field(v, f)

    def call(self, e: L.Call, env, ctx):
        n = e.name
        if n == "printf":
            args = [self.eval(a, env, ctx) for a in e.args[1:]]
            self.write(printf(e.args[0].value, args))
            return 0
        if n == "time":
            fmt = self.eval(e.args[0], env, ctx) if e.args else "%H:%M:%S\n"
            self.write(self.wallclock().strftime(fmt))
            return 0
        if n == "ntop":
            args = [self.eval(a, env, ctx) for a in e.args]
            v = _int(args[-1])
            return Inet((v & 0xFFFFFFFF).to_bytes(4, "little"))
        if n == "kstack":
            frames = ctx.kstack()
            limit = [a for a in e.args if isinstance(a, L.Int)]
            if limit:
                frames = frames[:limit[0].value]
            return KStack(frames, self.mem.kstack_indent)
        if n == "exit":
            raise Exit()
        if n == "print":
            a = e.args[0]
            if isinstance(a, L.Map):
                self.write(self.format_map(a.name))
            else:
                self.write(fmt_value(self.eval(a, env, ctx)) + "\n")
            return 0
        if n in ("clear", "zero"):
            m = self.maps.get(e.args[0].name, {})
            if n == "clear":
                m.clear()
            else:
                for k in m:
                    m[k] = Agg(m[k].kind) if isinstance(m[k], Agg) else 0
            return 0
        if n == "delete":
            a = e.args[0]
            self.maps.get(a.name, {}).pop(tuple(self.key(k, env, ctx) for k in a.keys), None)
            return 0
        if n == "str":
            v = self.eval(e.args[0], env, ctx)
            if isinstance(v, bytes):
                return v.split(b"\0", 1)[0].decode(errors="replace")
            if isinstance(v, Ptr):
                return self.mem.read_bytes(v.addr, 64).split(b"\0", 1)[0].decode(errors="replace")
            return str(v)
        if n == "bswap":
            v = _int(self.eval(e.args[0], env, ctx))
            return int.from_bytes((v & MASK64).to_bytes(8, "little"), "big")
        if n == "ksym":
            return str(self.eval(e.args[0], env, ctx))
        raise L.BtError(f"Unknown function: {n}", e.loc)

    # -- map output ------------------------------------------------------------------------
    def format_map(self, name: str) -> str:
        m = self.maps.get(name, {})
        if self.map_scalar.get(name, True) and not m:
            return f"{name}: 0\n"
        if not m:
            return "\n"
        items = list(m.items())
        if all(isinstance(v, (Agg, int)) for _, v in items):
            items.sort(key=lambda kv: kv[1].value if isinstance(kv[1], Agg) else kv[1])
        out = []
        for key, v in items:
            if key == ():
                out.append(f"{name}: {fmt_value(v)}\n")
            else:
                out.append(f"{name}[{fmt_key(key)}]: {fmt_value(v)}\n")
        return "".join(out)

    def exit_text(self) -> str:
        """What bpftrace prints when it ends (``exit()`` or SIGINT): two newlines, then every map."""
        return "\n\n" + "".join(self.format_map(n) for n in sorted(self.maps))


# -- printf --------------------------------------------------------------------------------
_SPEC = re.compile(r"%(?P<flags>[-+ 0#]*)(?P<width>\d*)(?:\.(?P<prec>\d+))?(?P<len>hh|h|ll|l|z|j)?(?P<conv>[diuxXscp%])")


def _specs(fmt: str) -> List[str]:
    return [m.group(0) for m in _SPEC.finditer(fmt) if m["conv"] != "%"]


def _static_kind(a) -> str:
    if isinstance(a, L.Str):
        return "string"
    if isinstance(a, L.Int):
        return "int"
    if isinstance(a, L.Ident) and a.name in ("comm", "func", "probe"):
        return "string"
    if isinstance(a, L.Ident) and a.name in ("pid", "tid", "cpu", "nsecs", "uid", "gid", "elapsed"):
        return "int"
    if isinstance(a, (L.Binop, L.Unop)) or (isinstance(a, L.Cast) and not a.ctype.endswith("*")):
        return "int"
    return ""


def printf(fmt: str, args: List[object]) -> str:
    out, i, pos = [], 0, 0
    for m in _SPEC.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        conv = m["conv"]
        if conv == "%":
            out.append("%")
            continue
        v = args[i] if i < len(args) else 0
        i += 1
        spec = "%" + m["flags"] + m["width"] + (("." + m["prec"]) if m["prec"] else "")
        wide = m["len"] in ("l", "ll", "z", "j")
        if conv == "s":
            out.append((spec + "s") % fmt_value(v).rstrip("\n") if not isinstance(v, KStack) else (spec + "s") % v.text())
            continue
        x = _int(v)
        bits = 64 if wide else 32
        if m["len"] == "h":
            bits = 16
        elif m["len"] == "hh":
            bits = 8
        if conv in "di":
            x &= (1 << bits) - 1
            if x >> (bits - 1):
                x -= 1 << bits
            out.append((spec + "d") % x)
        elif conv == "u":
            out.append((spec + "d") % (x & ((1 << bits) - 1)))
        elif conv in "xX":
            out.append((spec + conv) % (x & ((1 << bits) - 1)))
        elif conv == "c":
            out.append((spec + "c") % chr(x & 0xFF))
        elif conv == "p":
            out.append((spec + "s") % hex(x & MASK64))
    out.append(fmt[pos:])
    return "".join(out)


def _int(v) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, Ptr):
        return v.addr
    if isinstance(v, Agg):
        return v.value
    if isinstance(v, Inet):
        return int.from_bytes(v.raw, "little")
    return 0


def _truth(v) -> bool:
    if isinstance(v, str):
        return bool(v)
    return _int(v) != 0


def _binop(op: str, a, b):
    if op in ("==", "!="):
        if isinstance(a, str) or isinstance(b, str):
            eq = fmt_value(a) == fmt_value(b)
        else:
            eq = _int(a) == _int(b)
        return int(eq if op == "==" else not eq)
    if isinstance(a, Ptr) and op in ("+", "-") and not isinstance(b, Ptr):
        n = _sizeof(a.pointee)
        return Ptr((a.addr + (_int(b) if op == "+" else -_int(b)) * n) & MASK64, a.pointee)
    x, y = _int(a), _int(b)
    if op == "<":
        return int(x < y)
    if op == "<=":
        return int(x <= y)
    if op == ">":
        return int(x > y)
    if op == ">=":
        return int(x >= y)
    if op == "+":
        return s64(x + y)
    if op == "-":
        return s64(x - y)
    if op == "*":
        return s64(x * y)
    if op == "/":
        return 0 if y == 0 else s64(int(x / y))
    if op == "%":
        return 0 if y == 0 else s64(x % y)
    if op == "&":
        return s64(x & y)
    if op == "|":
        return s64(x | y)
    if op == "^":
        return s64(x ^ y)
    if op == "<<":
        return s64(x << (y & 63))
    if op == ">>":
        return s64((x & MASK64) >> (y & 63))
    raise ValueError(op)
