"""Running a parsed bpftrace program: values, maps, builtins, ``printf`` — output as bpftrace 0.17.

Semantic checks run once before attaching (as bpftrace's semantic analyser does), so an
unknown function or variable is reported with its location and nothing runs.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

from . import bt_lang as L
from .bt_check import AGGS, Checker
from .bt_mem import STRUCTS, VIRTUAL, Inet, KStack, Memory, Ptr, struct_known
from .bt_mem import sizeof as _sizeof
from .bt_values import MASK64, Agg, _binop, _int, _truth, fmt_key, fmt_value, printf, s64

ARITH = {"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"}


class Exit(Exception):
    """``exit()`` was called."""


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


class Runtime(Checker):
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


