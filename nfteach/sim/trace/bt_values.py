"""bpftrace's values: 64-bit integers, aggregations, how values and map keys print, and
``printf`` — as bpftrace 0.17 does. Used by :mod:`.bt_run`."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import bt_lang as L
from .bt_mem import Inet, KStack, Ptr
from .bt_mem import sizeof as _sizeof

MASK64 = (1 << 64) - 1


def s64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


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
