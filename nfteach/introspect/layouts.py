"""Struct layouts of the kernel objects the synthesized program models, as profile data.

The layouts in ``nfteach/model/profiles/*.toml`` (tables ``[layout.types."struct X"]``,
``[layout.enums."enum X"]``, ``[layout.typedefs]``) are *generated* by this module from
a real kernel's type information, never typed in by hand:

- DWARF of a Debian ``-dbg`` ``vmlinux`` (and ``nf_conntrack.ko``), read with drgn; for the
  Debian kernels ``nfteach vm derive --kernel K`` does this into ``K.derived.toml``, by hand::

      python -m nfteach.introspect.layouts --dwarf ~/.cache/nfteach/kernels/5.10/debug/vmlinux \\
          ~/.cache/nfteach/kernels/5.10/debug/nf_conntrack.ko

- BTF of a running kernel (``/sys/kernel/btf/vmlinux``; how the 6.18 profile was made)::

      python -m nfteach.introspect.layouts --btf /sys/kernel/btf/vmlinux

Only the members the simulator fills are kept for the big structs (``struct net``,
``struct nf_conn``, ...); their offsets and the struct's total size are the kernel's.
Members are ``[name, byte offset, type]`` or, for a bit field,
``[name, byte offset, type, bit size, bit offset within that byte]``.
"""
from __future__ import annotations

import struct as _struct
import sys
from typing import Dict, List, Optional, Tuple

from .layout_files import (
    OBJECTS,
    hook_function_names,
    symbols_from_debug,
    symbols_from_kallsyms,
    to_toml,
)

#: (type name, members to keep or None for all). Embedded types they need come along.
ROOTS: Tuple[Tuple[str, Optional[Tuple[str, ...]]], ...] = (
    ("struct list_head", None),
    ("struct hlist_nulls_head", None),
    ("struct hlist_nulls_node", None),
    ("struct nf_hook_entry", None),
    ("struct nf_hook_entries", None),
    ("struct nf_hook_entries_rcu_head", None),
    ("struct nf_hook_ops", None),
    ("struct netns_nf", ("hooks_ipv4", "hooks_ipv6", "hooks_arp", "hooks_bridge")),
    ("struct ns_common", ("inum",)),
    ("struct net", ("list", "ns", "nf", "ct")),
    ("struct netns_ct", ("count", "pcpu_lists")),
    ("struct ct_pcpu", ("unconfirmed", "dying")),
    ("struct nf_conntrack", None),
    ("struct nf_conntrack_tuple_hash", None),
    ("struct nf_conntrack_tuple", None),
    ("struct nf_conntrack_man", None),
    ("union nf_inet_addr", None),
    ("union nf_conntrack_man_proto", None),
    ("union nf_conntrack_proto", ("tcp",)),
    ("struct ip_ct_tcp", ("state",)),
    ("struct cpumask", None),
    ("struct nf_conn", ("ct_general", "timeout", "tuplehash", "status", "cpu", "ct_net", "mark", "proto")),
)
ENUMS = ("enum nf_inet_hooks", "enum nf_hook_ops_type", "enum ip_conntrack_dir",
         "enum ip_conntrack_status", "enum tcp_conntrack")
#: globals whose types we take from the kernel (name -> type); some live in modules

STRUCT, UNION, ENUM, TYPEDEF, POINTER, ARRAY, FUNCTION, INT, BOOL, VOID, FLOAT = (
    "struct", "union", "enum", "typedef", "pointer", "array", "function", "int", "bool", "void", "float")


# -- a neutral view of a type: what drgn.Type gives, and what the BTF reader gives -----------
class T:
    """Just the attributes the extractor reads (a subset of :class:`drgn.Type`)."""

    def __init__(self, kind, name=None, size=None, type=None, length=None, members=None,
                 enumerators=None, parameters=None, is_signed=False):
        self.kind, self.name, self.size, self.type = kind, name, size, type
        self.length, self.members, self.enumerators = length, members, enumerators
        self.parameters, self.is_signed = parameters, is_signed


def from_drgn(t) -> T:
    """Adapt a :class:`drgn.Type` (lazily, members included) to :class:`T`."""
    from drgn import TypeKind

    k = t.kind
    kind = {TypeKind.STRUCT: STRUCT, TypeKind.UNION: UNION, TypeKind.ENUM: ENUM,
            TypeKind.TYPEDEF: TYPEDEF, TypeKind.POINTER: POINTER, TypeKind.ARRAY: ARRAY,
            TypeKind.FUNCTION: FUNCTION, TypeKind.INT: INT, TypeKind.BOOL: BOOL,
            TypeKind.VOID: VOID, TypeKind.FLOAT: FLOAT}[k]
    if kind in (STRUCT, UNION):
        members = None
        if t.is_complete():
            members = [(m.name, m.bit_offset, m.bit_field_size or 0, _Lazy(m)) for m in t.members]
        return T(kind, t.tag, t.size if t.is_complete() else None, members=members)
    if kind == ENUM:
        en = [(e.name, e.value) for e in t.enumerators] if t.is_complete() else None
        return T(kind, t.tag, t.type.size if t.is_complete() else 4, enumerators=en,
                 is_signed=bool(t.is_complete() and t.type.is_signed))
    if kind == TYPEDEF:
        return T(kind, t.name, type=_Lazy(t.type))
    if kind == POINTER:
        return T(kind, size=t.size, type=_Lazy(t.type))
    if kind == ARRAY:
        return T(kind, length=t.length, type=_Lazy(t.type))
    if kind == FUNCTION:
        return T(kind, type=_Lazy(t.type), parameters=[_Lazy(p) for p in t.parameters])
    if kind in (INT, BOOL, FLOAT):
        return T(kind, t.name, t.size, is_signed=getattr(t, "is_signed", False))
    return T(VOID, "void")


class _Lazy:
    def __init__(self, x):
        self.x = x

    def get(self) -> T:
        x = self.x
        if hasattr(x, "type") and not hasattr(x, "kind"):  # TypeMember / TypeParameter
            x = x.type
        return from_drgn(x)


# -- BTF ------------------------------------------------------------------------------
_BTF_KINDS = {1: INT, 2: POINTER, 3: ARRAY, 4: STRUCT, 5: UNION, 6: ENUM, 7: "fwd", 8: TYPEDEF,
              9: "q", 10: "q", 11: "q", 12: "func", 13: FUNCTION, 14: "var", 15: "datasec",
              16: FLOAT, 17: "decl_tag", 18: "q", 19: ENUM}


class Btf:
    """A minimal reader of kernel BTF (``include/uapi/linux/btf.h``): enough for layouts."""

    def __init__(self, data: bytes):
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = _struct.unpack_from("<HBBIIIII", data)
        if magic != 0xEB9F:
            raise ValueError("not BTF (bad magic)")
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.raw: List[tuple] = [(VOID, "", 0, 0, 0, None)]  # id 0 is void
        self.by_name: Dict[str, int] = {}
        self.vars: Dict[str, int] = {}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            name_off, info, size_type = _struct.unpack_from("<III", data, pos)
            pos += 12
            vlen, kind_n, kflag = info & 0xFFFF, (info >> 24) & 0x1F, info >> 31
            kind, name, extra = _BTF_KINDS[kind_n], self._str(name_off), None
            if kind_n == 1:
                enc = _struct.unpack_from("<I", data, pos)[0]
                extra, pos = enc, pos + 4
            elif kind_n == 3:
                extra, pos = _struct.unpack_from("<III", data, pos), pos + 12
            elif kind_n in (4, 5):
                ms = []
                for _ in range(vlen):
                    mn, mt, mo = _struct.unpack_from("<III", data, pos)
                    pos += 12
                    bits, off = (mo >> 24, mo & 0xFFFFFF) if kflag else (0, mo)
                    ms.append((self._str(mn), off, bits, mt))
                extra = ms
            elif kind_n == 6:
                es = []
                for _ in range(vlen):
                    en, ev = _struct.unpack_from("<Ii" if kflag else "<II", data, pos)
                    pos += 8
                    es.append((self._str(en), ev))
                extra = (es, bool(kflag))
            elif kind_n == 19:
                es = []
                for _ in range(vlen):
                    en, lo, hi = _struct.unpack_from("<III", data, pos)
                    pos += 12
                    es.append((self._str(en), lo | hi << 32))
                extra = (es, bool(kflag))
            elif kind_n == 13:
                extra = [_struct.unpack_from("<II", data, pos + 8 * i)[1] for i in range(vlen)]
                pos += 8 * vlen
            elif kind_n in (14, 17):
                pos += 4
            elif kind_n == 15:
                pos += 12 * vlen
            tid = len(self.raw)
            self.raw.append((kind, name, size_type, kflag, vlen, extra))
            if kind in (STRUCT, UNION, ENUM, TYPEDEF, INT, FLOAT) and name:
                key = f"{kind} {name}" if kind in (STRUCT, UNION, ENUM) else name
                if key not in self.by_name or (kind in (STRUCT, UNION) and vlen):
                    self.by_name[key] = tid
            elif kind == "var":
                self.vars[name] = size_type
            elif kind == "fwd" and name:
                self.by_name.setdefault(f"{'union' if kflag else 'struct'} {name}", tid)

    def _str(self, off: int) -> str:
        return self.strings[off:self.strings.index(b"\0", off)].decode()

    def type(self, name: str) -> T:
        if name not in self.by_name:
            raise LookupError(f"could not find {name!r}")
        return self.get(self.by_name[name])

    def get(self, tid: int) -> T:
        kind, name, st, kflag, vlen, extra = self.raw[tid]
        if kind == "q" or kind == "decl_tag":  # const/volatile/restrict/type_tag: look through
            return self.get(st)
        if kind == "fwd":
            return T(UNION if kflag else STRUCT, name)
        if kind == INT:
            enc = extra >> 24
            return T(BOOL if enc & 4 else INT, name, st, is_signed=bool(enc & 1))
        if kind == FLOAT:
            return T(FLOAT, name, st)
        if kind == POINTER:
            return T(POINTER, size=8, type=_BtfLazy(self, st))
        if kind == ARRAY:
            return T(ARRAY, length=extra[2], type=_BtfLazy(self, extra[0]))
        if kind in (STRUCT, UNION):
            ms = [(mn, off, bits, _BtfLazy(self, mt)) for mn, off, bits, mt in extra]
            return T(kind, name or None, st, members=ms)
        if kind == ENUM:
            return T(ENUM, name or None, st, enumerators=extra[0], is_signed=extra[1])
        if kind == TYPEDEF:
            return T(TYPEDEF, name, type=_BtfLazy(self, st))
        if kind == FUNCTION:
            return T(FUNCTION, type=_BtfLazy(self, st), parameters=[_BtfLazy(self, p) for p in extra])
        return T(VOID, "void")


class _BtfLazy:
    def __init__(self, btf: Btf, tid: int):
        self.btf, self.tid = btf, tid

    def get(self) -> T:
        return self.btf.get(self.tid)


# -- the extractor ----------------------------------------------------------------------
class Extractor:
    """Collect the ROOTS and what they embed into plain data (the profile's layout tables)."""

    def __init__(self, lookup):
        self.lookup = lookup  # name -> T (raises LookupError)
        self.types: Dict[str, dict] = {}
        self.enums: Dict[str, dict] = {}
        self.typedefs: Dict[str, object] = {}
        self.filters = dict(ROOTS)

    def run(self, objects: Dict[str, T]) -> dict:
        for name, _ in ROOTS:
            try:
                t = self.lookup(name)
            except LookupError:
                continue  # e.g. struct ct_pcpu is gone in 6.x
            self.define(name, t)
        for name in ENUMS:
            try:
                self.name_of(self.lookup(name))
            except LookupError:
                pass
        objs = {k: self.name_of(v) for k, v in objects.items()}
        return {"types": self.types, "enums": self.enums, "typedefs": self.typedefs, "objects": objs}

    def define(self, name: str, t: T) -> None:
        if name in self.types or t.members is None:
            return
        keep = self.filters.get(name)
        self.types[name] = {"size": t.size, "members": []}  # placeholder against recursion
        members = []
        for mname, bit_off, bits, lazy in t.members:
            if keep is not None and mname not in keep:
                continue
            mt = lazy.get()
            parent = name.split(" ", 1)[1].strip("<>")
            tn = self.name_of(mt, anon=f"{parent}.{mname or 'anon'}", embedded=True)
            row = [mname or "", bit_off // 8, tn]
            if bits:
                row += [bits, bit_off % 8]
            elif bit_off % 8:
                raise ValueError(f"{name}.{mname}: unaligned member")
            members.append(row)
        self.types[name]["members"] = members

    def name_of(self, t: T, anon: str = "anon", embedded: bool = False) -> str:
        """The type's name as the builder parses it; records what it needs."""
        if t.kind in (STRUCT, UNION):
            name = f"{t.kind} {t.name}" if t.name else f"{t.kind} <{anon}>"
            if embedded or not t.name or name in self.filters:
                if t.members is None and t.name:
                    try:
                        t = self.lookup(name)
                    except LookupError:
                        pass
                self.define(name, t)
            return name
        if t.kind == ENUM:
            name = f"enum {t.name}" if t.name else f"enum <{anon}>"
            if name not in self.enums and t.enumerators is not None:
                self.enums[name] = {"size": t.size, "signed": bool(t.is_signed),
                                    "values": [[n, v] for n, v in t.enumerators]}
            return name
        if t.kind == TYPEDEF:
            if t.name not in self.typedefs:
                self.typedefs[t.name] = ""  # recursion guard
                target = t.type.get()
                if target.kind == FUNCTION:
                    self.typedefs[t.name] = {
                        "returns": self.name_of(target.type.get()),
                        "params": [self.name_of(p.get()) for p in target.parameters]}
                else:
                    self.typedefs[t.name] = self.name_of(target, anon=t.name, embedded=True)
            return t.name
        if t.kind == POINTER:
            target = t.type.get()
            if target.kind == FUNCTION:
                return "void *"  # an unnamed function pointer type: same size and place
            inner = self.name_of(target)
            return inner + (" *" if not inner.endswith("*") else "*")
        if t.kind == ARRAY:
            inner_t = t.type.get()
            inner = self.name_of(inner_t, anon=anon, embedded=embedded)
            return f"{inner}[{t.length if t.length is not None else ''}]"
        if t.kind in (INT, BOOL, FLOAT):
            return t.name
        return "void"


def from_dwarf(paths: List[str]) -> dict:
    import drgn

    prog = drgn.Program(drgn.host_platform)
    for p in paths:
        prog.extra_module(p, create=True).try_file(p, force=True)
    ex = Extractor(lambda n: from_drgn(prog.type(n)))
    objs = {}
    for name in OBJECTS:
        try:
            objs[name] = from_drgn(prog.variable(name).type_)
        except (LookupError, KeyError):
            pass
    return ex.run(objs)


def from_btf(path: str) -> dict:
    with open(path, "rb") as f:
        btf = Btf(f.read())
    ex = Extractor(btf.type)
    objs = {n: btf.get(btf.vars[n]) for n in OBJECTS if n in btf.vars}
    return ex.run(objs)


def len_of(array_type: str) -> int:
    return int(array_type.rsplit("[", 1)[1].rstrip("]") or 0)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--dwarf", nargs="+", metavar="FILE", help="vmlinux (+ .ko) with DWARF")
    g.add_argument("--btf", metavar="FILE", help="a BTF blob, e.g. /sys/kernel/btf/vmlinux")
    ap.add_argument("--source", default="", help="the provenance line written into the TOML")
    ap.add_argument("--profile", help="kernel profile whose hook functions get [layout.symbols]")
    ap.add_argument("--kallsyms", help="take symbols from this kallsyms file (built-in kernels)")
    a = ap.parse_args(argv)
    data = from_dwarf(a.dwarf) if a.dwarf else from_btf(a.btf)
    if a.btf:
        # BTF has types, not the types of globals (only per-CPU variables): these are the
        # declarations of include/net/net_namespace.h, nf_conntrack.h, cpumask.h, percpu.h
        nr_cpus = 64 * len_of(data["types"].get("struct cpumask", {}).get("members", [["", 0, "[1]"]])[0][2])
        for k, v in (("init_net", "struct net"), ("net_namespace_list", "struct list_head"),
                     ("nf_conntrack_hash", "struct hlist_nulls_head *"),
                     ("nf_conntrack_htable_size", "unsigned int"), ("nr_cpu_ids", "unsigned int"),
                     ("__per_cpu_offset", f"unsigned long[{nr_cpus}]"),
                     ("__cpu_possible_mask", "struct cpumask")):
            data["objects"].setdefault(k, v)
    if a.profile:
        import os

        from ..model.profile import load_profile

        names = hook_function_names(load_profile(a.profile))
        if a.kallsyms:
            data["symbols"] = symbols_from_kallsyms(a.kallsyms, names)
        else:
            data["symbols"] = symbols_from_debug(os.path.dirname(a.dwarf[0]), names)
    sys.stdout.write(to_toml(data, a.source or f"{'DWARF' if a.dwarf else 'BTF'} of {a.dwarf or a.btf}"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
