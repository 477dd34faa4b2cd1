"""A real :class:`drgn.Program` over the simulator's kernel, laid out like the real kernel.

Types come from the profile's ``[layout.*]`` tables (generated from the real kernel's
DWARF or BTF by :mod:`nfteach.introspect.layouts`), so every modelled member sits at the
kernel's offset and every struct has the kernel's size. Memory is synthesized from the
model on each read (it follows the model as commands run): ``struct net`` for every
namespace (``init_net`` at its real address, the others on the heap, all linked on
``net_namespace_list``), ``nf_hook_entries`` blobs with their trailing
``nf_hook_ops *`` array and rcu head, ``nf_hook_ops``, the conntrack hash table
``nf_conntrack_hash`` with its ``nf_conn`` objects, and on 5.10 the per-CPU
unconfirmed/dying lists. Hook functions have symbols at kernel-looking addresses:
module functions in the module area (0xffffffffc0...), built-ins in kernel text.

>>> from nfteach.sim.kernel.kernel import Kernel
>>> prog = sim_program(Kernel("5.10"))
>>> print(prog["init_net"].nf.hooks_ipv4[0])
(struct nf_hook_entries *)0x0
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional

import drgn
from drgn import (
    Object,
    Program,
    Symbol,
    SymbolBinding,
    SymbolKind,
    TypeEnumerator,
    TypeKind,
    TypeMember,
    TypeParameter,
)

from . import memory
from .build import build_image

PLATFORM = drgn.Platform(drgn.Architecture.X86_64,
                         drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN)
_TYPE_RE = re.compile(r"^(?P<base>.*?)\s*(?P<ptr>(?:\*\s*)*)(?P<arr>(?:\[\d*\])*)$")


class LayoutError(Exception):
    """The profile has no ``[layout]`` tables for this kernel."""


class TypeBuilder:
    """drgn types from the profile's layout tables (and a type finder serving them)."""

    def __init__(self, prog: Program, layout: dict):
        self.prog = prog
        self.structs: Dict[str, dict] = layout.get("types", {})
        self.enums: Dict[str, dict] = layout.get("enums", {})
        self.typedefs: Dict[str, object] = dict(layout.get("typedefs", {}))
        self.cache: Dict[str, drgn.Type] = {}

    def named(self, key: str) -> Optional[drgn.Type]:
        """``struct X`` / ``union X`` / ``enum X`` / a typedef name."""
        if key in self.cache:
            return self.cache[key]
        p = self.prog
        if key.startswith(("struct ", "union ")):
            kind, tag = key.split(" ", 1)
            make = p.struct_type if kind == "struct" else p.union_type
            tag_or_none = None if tag.startswith("<") else tag
            spec = self.structs.get(key)
            if spec is None:
                t = make(tag_or_none)  # incomplete: only ever pointed to
            else:
                t = make(tag_or_none, spec["size"], [self._member(m) for m in spec["members"]])
        elif key.startswith("enum "):
            spec = self.enums.get(key)
            tag = key[5:]
            if spec is None:
                t = p.enum_type(None if tag.startswith("<") else tag)
            else:
                compat = p.int_type("int" if spec["signed"] else "unsigned int", spec["size"], spec["signed"])
                t = p.enum_type(None if tag.startswith("<") else tag, compat,
                                [TypeEnumerator(n, v) for n, v in spec["values"]])
        elif key in self.typedefs:
            target = self.typedefs[key]
            if isinstance(target, dict):
                fn = p.function_type(self.parse(target["returns"]),
                                     [TypeParameter(self.parse(x)) for x in target["params"]])
                t = p.typedef_type(key, fn)
            else:
                t = p.typedef_type(key, self.parse(target))
        else:
            return None
        self.cache[key] = t
        return t

    def _member(self, m) -> TypeMember:
        name, off, tname = m[0], m[1], m[2]
        if len(m) > 3:  # bit field
            bits, extra = m[3], m[4]
            return TypeMember(lambda: Object(self.prog, self.parse(tname), bit_field_size=bits),
                              name or None, off * 8 + extra)
        return TypeMember(lambda: self.parse(tname), name or None, off * 8)

    def parse(self, tname: str) -> drgn.Type:
        mt = _TYPE_RE.match(tname.strip())
        base, ptrs, arrs = mt["base"].strip(), mt["ptr"].count("*"), re.findall(r"\[(\d*)\]", mt["arr"])
        base = base.replace("const ", "").replace("volatile ", "")
        t = self.named(base)
        if t is None:
            t = self.prog.void_type() if base == "void" else self.prog.type(base)
        for _ in range(ptrs):
            t = self.prog.pointer_type(t)
        for n in reversed(arrs):
            t = self.prog.array_type(t, int(n) if n and n != "0" else (0 if n == "0" else None))
        return t

    def find(self, prog, kinds, name: str, filename) -> Optional[drgn.Type]:
        for kind, prefix in ((TypeKind.STRUCT, "struct "), (TypeKind.UNION, "union "),
                             (TypeKind.ENUM, "enum "), (TypeKind.TYPEDEF, "")):
            if kind in kinds:
                key = prefix + name
                if key in self.structs or key in self.enums or (not prefix and key in self.typedefs):
                    return self.named(key)
        if TypeKind.STRUCT in kinds and not name.startswith("<"):
            return self.named("struct " + name)  # incomplete struct, as a forward declaration
        return None


class SimProgram:
    """Owns the drgn Program, its finders and the memory image of one simulated kernel."""

    def __init__(self, kernel):
        self.kernel = kernel
        layout = kernel.profile.extra.get("layout")
        if not layout or "types" not in layout:
            raise LayoutError(f"kernel profile {kernel.profile.name} has no [layout] tables")
        self.layout = layout
        self.prog = Program(PLATFORM)
        self.types = TypeBuilder(self.prog, layout)
        self.image = memory.Image(kernel, layout, self.types, build_image)
        self.prog.register_type_finder("nfteach-sim", self.types.find, enable_index=0)
        self.prog.register_object_finder("nfteach-sim", self._find_object, enable_index=0)
        self.prog.register_symbol_finder("nfteach-sim", self._find_symbols, enable_index=0)
        self.prog.add_memory_segment(0xFFFF800000000000, 0x7FFFFFFFFFFFFFFF, self._read)
        self.prog.cache["nfteach.sim"] = self  # for helpers and tests

    # -- memory --------------------------------------------------------------------------
    def _read(self, address: int, count: int, offset: int, physical: bool) -> bytes:
        return self.image.read(address, count)

    # -- objects -------------------------------------------------------------------------
    def _find_object(self, prog, name: str, flags, filename) -> Optional[Object]:
        img = self.image
        img.refresh()
        if flags & drgn.FindObjectFlags.VARIABLE:
            tname = img.object_types().get(name)
            if tname is not None and name in img.symbols:
                return Object(prog, self.types.parse(tname), address=img.symbols[name][0])
        if flags & drgn.FindObjectFlags.FUNCTION and name in img.functions:
            return Object(prog, self.types.named("nf_hookfn").type, address=img.symbols[name][0])
        if flags & drgn.FindObjectFlags.CONSTANT:
            for key, spec in self.layout.get("enums", {}).items():
                for n, v in spec["values"]:
                    if n == name:
                        return Object(prog, self.types.named(key), v)
        return None

    # -- symbols -------------------------------------------------------------------------
    def _find_symbols(self, prog, name: Optional[str], address: Optional[int], one: bool) -> List[Symbol]:
        img = self.image
        img.refresh()
        out = []
        for sname, (addr, size, is_fn, is_global) in img.symbols.items():
            if name is not None and sname != name:
                continue
            if address is not None and not addr <= address < addr + max(size, 1):
                continue
            out.append(Symbol(sname, addr, size,
                              SymbolBinding.GLOBAL if is_global else SymbolBinding.LOCAL,
                              SymbolKind.FUNC if is_fn else SymbolKind.OBJECT))
            if one:
                break
        return out


def sim_program(kernel) -> Program:
    """A :class:`drgn.Program` whose memory, types and symbols are the simulated ``kernel``'s."""
    return SimProgram(kernel).prog

