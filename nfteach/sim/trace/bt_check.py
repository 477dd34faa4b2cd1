"""bpftrace's semantic analysis on the subset: what bpftrace refuses before attaching (an
unknown function, builtin or field, a map used two ways, a printf argument of the wrong
type), with its location. Part of :class:`.bt_run.Runtime`."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from . import bt_lang as L
from .bt_mem import STRUCTS, VIRTUAL, struct_known
from .bt_values import _specs, _static_kind

AGGS = {"count", "sum", "min", "max", "avg"}
SUPPORTED_CALLS = {"printf", "time", "ntop", "kstack", "exit", "print", "clear", "zero", "delete", "str",
                   "bswap", "ksym", *AGGS}
NOT_IN_SUBSET = {"hist", "lhist", "stats", "ustack", "system", "cat", "signal", "override", "join",
                 "buf", "kptr", "uptr", "reg", "usym", "uaddr", "kaddr", "cgroupid", "strftime", "path",
                 "macaddr", "sizeof", "offsetof", "strncmp", "strcontains", "skboutput", "cgroup_path",
                 "unwatch", "debugf", "len", "has_key", "pton"}
BUILTINS = {"pid", "tid", "uid", "gid", "nsecs", "elapsed", "cpu", "comm", "func", "probe", "retval",
            "args", "kstack", "curtask", "rand", "cgroup", "username", "ustack", "sarg0"} | {f"arg{i}" for i in range(10)}


class Checker:
    """The checks, run once by ``Runtime.check`` before any probe runs."""

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
