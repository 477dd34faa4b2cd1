"""The memory image of a simulated kernel, byte for byte where drgn looks.

Addresses follow the x86-64 kernel's map: kernel text and data at 0xffffffff81.../82...
(the real addresses of the -dbg vmlinux's symbols where the profile has them), modules
in the module area 0xffffffffc0..., kmalloc'd objects in the direct map 0xffff8880...,
kvmalloc'd tables in vmalloc space 0xffffc900..., per-CPU areas at ``__per_cpu_offset``.
An object keeps its address for as long as the model keeps it (an ``nf_hook_entries``
blob is replaced when its hook list changes, as ``nf_hook_entries_grow`` does).
The image is rebuilt from the model whenever the model changed since the last read.
"""
from __future__ import annotations

import bisect
import ipaddress
import struct
from typing import Callable, Dict, List, Optional, Tuple

import drgn

HZ = 250                            # CONFIG_HZ of every profiled kernel (Debian 5.10/6.1, this 6.18)
INITIAL_JIFFIES = (-300 * HZ) & 0xFFFFFFFF
NFPROTO = {"ipv4": 2, "ipv6": 10}
AF_INET = 2
UNCONFIRMED_NULLS_VAL, DYING_NULLS_VAL = (1 << 30) + 0, (1 << 30) + 1
MODULE_AREA = 0xFFFFFFFFC0030000  # a fresh Debian guest: nf_defrag_ipv4 at 0xffffffffc003b000
KERNEL_DATA_SYNTH = 0xFFFFFFFF83A00000   # globals with no address in the profile (6.18: BTF has none)
KERNEL_TEXT_SYNTH = 0xFFFFFFFF82F00000   # built-in functions the profile has no address for
HEAP = 0xFFFF888004000000
VMALLOC = 0xFFFFC90000200000
PERCPU_BASE = 0xFFFF88807DA00000
PERCPU_STRIDE = 0x40000
PERCPU_PTR_BASE = 0x2C4A0
#: load order of the netfilter modules (dependencies first), for plausible module addresses
MODULE_ORDER = ("nf_defrag_ipv6", "nf_defrag_ipv4", "nf_conntrack", "x_tables", "ip_tables",
                "iptable_filter", "iptable_raw", "iptable_mangle", "iptable_security", "ip6_tables",
                "ip6table_filter", "ip6table_raw", "ip6table_mangle", "ip6table_security",
                "nf_nat", "nf_tables")
KMALLOC_SIZES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)


def _guess_module(fn: str) -> str:
    for prefix, mod in (("nf_nat_", "nf_nat"), ("nft_", "nf_tables"), ("ipt_", "ip_tables"),
                        ("ip6t_", "ip6_tables"), ("iptable_", "iptable_filter"),
                        ("ip6table_", "ip6table_filter"), ("ipv4_conntrack_defrag", "nf_defrag_ipv4"),
                        ("ipv6_defrag", "nf_defrag_ipv6"), ("ipv", "nf_conntrack"), ("nf_", "nf_conntrack")):
        if fn.startswith(prefix):
            return mod
    return "vmlinux"


class Region:
    __slots__ = ("start", "size", "data", "fn")

    def __init__(self, start: int, size: int, data: Optional[bytes] = None,
                 fn: Optional[Callable[[int, int], bytes]] = None):
        self.start, self.size, self.data, self.fn = start, size, data, fn

    def read(self, off: int, n: int) -> bytes:
        return self.data[off:off + n] if self.fn is None else self.fn(off, n)


class Blob:
    """A struct being written: ``b.put("nf.hooks_ipv4[0]", value)`` by member designator."""

    def __init__(self, image: Image, key: str, address: int, size: Optional[int] = None):
        self.image, self.key, self.address = image, key, address
        self.buf = bytearray(size if size is not None else image.sizeof(key))

    def put(self, designator: str, value: int, size: Optional[int] = None, signed: bool = False) -> None:
        off, msize = self.image.member(self.key, designator)
        size = size or msize
        self.buf[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def has(self, designator: str) -> bool:
        try:
            self.image.member(self.key, designator)
            return True
        except (LookupError, ValueError):
            return False

    def addr_of(self, designator: str) -> int:
        return self.address + self.image.member(self.key, designator)[0]


class Image:
    def __init__(self, kernel, layout: dict, types, build: Callable[[Image], List[Region]]):
        self.kernel, self.layout, self.types = kernel, layout, types
        self._build = build  # nfteach.introspect.build.build_image
        self.regions: List[Region] = []
        self._starts: List[int] = []
        self._fp = None
        self._members: Dict[Tuple[str, str], Tuple[int, int]] = {}
        self._addr: Dict[object, int] = {}
        self._keep: List[object] = []
        self._heap = HEAP
        self._vmalloc = VMALLOC
        self._module_static: Dict[str, int] = {}
        self.symbols: Dict[str, Tuple[int, int, bool, bool]] = {}
        self.functions: set = set()
        self.modules: Dict[str, Tuple[int, int]] = {}  # module -> (text base, data base)
        self._synth_text = KERNEL_TEXT_SYNTH
        self._synth_data = KERNEL_DATA_SYNTH
        self._place_modules()

    # -- layout helpers --------------------------------------------------------------------
    def sizeof(self, key: str) -> int:
        return self.types.named(key).size

    def member(self, key: str, designator: str) -> Tuple[int, int]:
        k = (key, designator)
        if k not in self._members:
            t = self.types.named(key)
            off = drgn.offsetof(t, designator)
            mt = t
            for part in designator.replace("]", "").replace("[", ".[").split("."):
                mt = mt.type if mt.kind == drgn.TypeKind.TYPEDEF else mt
                while mt.kind == drgn.TypeKind.TYPEDEF:
                    mt = mt.type
                if part.startswith("["):
                    mt = mt.type
                else:
                    mt = mt.member(part).type
            self._members[k] = (off, drgn.sizeof(mt))
        return self._members[k]

    # -- addresses ---------------------------------------------------------------------------
    def _place_modules(self) -> None:
        syms = self.layout.get("symbols", {})
        extent: Dict[str, int] = {}
        for name, (mod, addr, size) in syms.items():
            if mod != "vmlinux" and name not in self.layout.get("objects", {}):
                extent[mod] = max(extent.get(mod, 0), int(addr, 16) + size)
        for fn in self.kernel.profile.hookfn.values():
            mod = _guess_module(fn) if self.kernel.profile.modules else "vmlinux"
            if fn and fn not in syms and mod != "vmlinux":
                extent.setdefault(mod, 0x1000)
        if self.kernel.profile.modules:
            extent.setdefault("nf_conntrack", 0x1000)
        order = [m for m in MODULE_ORDER if m in extent] + sorted(m for m in extent if m not in MODULE_ORDER)
        base = MODULE_AREA
        for mod in order:
            text = (extent[mod] + 0x1FFF) & ~0xFFF
            self.modules[mod] = (base, base + text)
            base += text + 0x4000 + 0x3000  # text, data, a guard page or two
        for name, (mod, addr, size) in syms.items():
            a = int(addr, 16)
            is_data = name in self.layout.get("objects", {})
            if mod != "vmlinux":
                a += self.modules[mod][1 if is_data else 0]
            self.symbols[name] = (a, size, not is_data, True)
            if not is_data:
                self.functions.add(name)

    def function(self, name: str) -> int:
        """Address of a hook function (synthesized after the module's known ones if missing)."""
        if name not in self.symbols:
            mod = _guess_module(name) if self.kernel.profile.modules else "vmlinux"
            if mod == "vmlinux":
                addr, self._synth_text = self._synth_text, self._synth_text + 0x100
            else:
                text, data = self.modules[mod]
                used = max([a + s for a, s, f, _ in self.symbols.values() if text <= a < data and f], default=text)
                addr = (used + 0xF) & ~0xF
            self.symbols[name] = (addr, 0x80, True, False)
            self.functions.add(name)
        return self.symbols[name][0]

    def global_addr(self, name: str, size: int) -> int:
        if name not in self.symbols:
            mod = "nf_conntrack" if name.startswith("nf_conntrack") and "nf_conntrack" in self.modules else None
            if mod:
                addr = self.static(mod, size)
            else:
                addr, self._synth_data = self._synth_data, self._synth_data + ((size + 63) & ~63)
            self.symbols[name] = (addr, size, False, True)
        return self.symbols[name][0]

    def static(self, module: str, size: int) -> int:
        """Room in a module's (or vmlinux's) data section: static ``nf_hook_ops`` arrays."""
        if module == "vmlinux" or module not in self.modules:
            addr, self._synth_data = self._synth_data, self._synth_data + ((size + 7) & ~7)
            return addr
        data = self.modules[module][1]
        used = self._module_static.get(module, data + 0x800)
        self._module_static[module] = used + ((size + 7) & ~7)
        return used

    def kmalloc(self, key, size: int, keep: object = None, align: int = 0) -> int:
        if key in self._addr:
            return self._addr[key]
        if align:
            size = (size + align - 1) & ~(align - 1)
        else:
            size = next((s for s in KMALLOC_SIZES if s >= size), (size + 0xFFF) & ~0xFFF)
        addr = self._heap
        self._heap += size
        self._addr[key] = addr
        if keep is not None:
            self._keep.append(keep)
        return addr

    def vmalloc(self, key, size: int) -> int:
        if key not in self._addr:
            self._addr[key] = self._vmalloc
            self._vmalloc += ((size + 0xFFF) & ~0xFFF) + 0x1000
        return self._addr[key]

    # -- reading ----------------------------------------------------------------------------
    def read(self, address: int, count: int) -> bytes:
        self.refresh()
        out = bytearray()
        while count > 0:
            i = bisect.bisect_right(self._starts, address) - 1
            r = self.regions[i] if i >= 0 else None
            if r is None or address >= r.start + r.size:
                raise drgn.FaultError("could not read memory", address)
            n = min(count, r.start + r.size - address)
            out += r.read(address - r.start, n)
            address += n
            count -= n
        return bytes(out)

    def refresh(self) -> None:
        fp = self.fingerprint()
        if fp != self._fp:
            self.regions = sorted(self._build(self), key=lambda r: r.start)
            self._starts = [r.start for r in self.regions]
            self._fp = fp

    def fingerprint(self) -> tuple:
        k = self.kernel
        parts: list = [k.now, k.conntrack.loaded, k.conntrack.htable_size, tuple(k.namespaces)]
        for ns in k.namespaces.values():
            parts.extend(tuple(map(id, lst)) for lst in ns.nf.hooks.values())
            ct = ns.ct
            if ct is not None:
                parts.append(ct.count)
                conns = ct.entries() + [c for lst in ct.unconfirmed for c in lst] + list(ct.dying)
                parts.extend((id(c), c.status, c.timeout, c.use, c.mark, c.cpu,
                              c.proto.state if c.proto else 0) for c in conns)
        return tuple(parts)

    def object_types(self) -> Dict[str, str]:
        objs = dict(self.layout.get("objects", {}))
        objs.setdefault("jiffies", "unsigned long")
        objs["jiffies"] = "unsigned long"
        if self.kernel.profile.modules and not self.kernel.conntrack.loaded:
            objs.pop("nf_conntrack_hash", None)  # the nf_conntrack module is not loaded
            objs.pop("nf_conntrack_htable_size", None)
        return objs

    # -- values -----------------------------------------------------------------------------
    def jiffies(self) -> int:
        return INITIAL_JIFFIES + round(self.kernel.now * HZ)


def ip_bytes(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def be16(port: int) -> int:
    """A ``__be16`` as the little-endian CPU sees it."""
    return struct.unpack("<H", struct.pack(">H", port))[0]


def be32(addr: str) -> int:
    return struct.unpack("<I", ip_bytes(addr))[0]
