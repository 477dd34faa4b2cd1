"""Kernel types and memory as bpftrace sees them on the simulator.

Packet headers are real bytes at real offsets: ``$skb->head + $skb->network_header`` points
into the skb's linear buffer (:meth:`nfteach.sim.kernel.skb.Skb.linear`), and ``struct iphdr`` /
``struct tcphdr`` fields (bitfields included) are read from those bytes in little-endian
order, as on x86_64. ``struct sk_buff``, ``struct nf_conn`` and a few others are *virtual*:
only the fields listed in :data:`VIRTUAL` are modelled, read from the model's objects.
"""
from __future__ import annotations

import struct as _struct
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

# (name, offset, size, signed, bit offset, bit width, pointee/None, array length)
_F = Tuple[str, int, int, bool, int, int, Optional[str], int]


@dataclass(frozen=True)
class CField:
    name: str
    offset: int
    size: int
    signed: bool = False
    bitoff: int = 0
    bits: int = 0
    pointee: Optional[str] = None  # "struct iphdr", "unsigned char", "void"
    array: int = 0                 # char name[16]
    ctype: str = ""


def _mk(fields) -> Dict[str, CField]:
    return {f.name: f for f in fields}


# Byte-backed structs (include/uapi/linux/ip.h, tcp.h, udp.h, if_ether.h; little-endian bitfields)
STRUCTS: Dict[str, Dict[str, CField]] = {
    "struct iphdr": _mk([
        CField("ihl", 0, 1, bits=4, bitoff=0, ctype="__u8"), CField("version", 0, 1, bits=4, bitoff=4, ctype="__u8"),
        CField("tos", 1, 1, ctype="__u8"), CField("tot_len", 2, 2, ctype="__be16"), CField("id", 4, 2, ctype="__be16"),
        CField("frag_off", 6, 2, ctype="__be16"), CField("ttl", 8, 1, ctype="__u8"),
        CField("protocol", 9, 1, ctype="__u8"), CField("check", 10, 2, ctype="__sum16"),
        CField("saddr", 12, 4, ctype="__be32"), CField("daddr", 16, 4, ctype="__be32"),
    ]),
    "struct tcphdr": _mk([
        CField("source", 0, 2, ctype="__be16"), CField("dest", 2, 2, ctype="__be16"),
        CField("seq", 4, 4, ctype="__be32"), CField("ack_seq", 8, 4, ctype="__be32"),
        CField("res1", 12, 2, bits=4, bitoff=0, ctype="__u16"), CField("doff", 12, 2, bits=4, bitoff=4, ctype="__u16"),
        CField("fin", 12, 2, bits=1, bitoff=8, ctype="__u16"), CField("syn", 12, 2, bits=1, bitoff=9, ctype="__u16"),
        CField("rst", 12, 2, bits=1, bitoff=10, ctype="__u16"), CField("psh", 12, 2, bits=1, bitoff=11, ctype="__u16"),
        CField("ack", 12, 2, bits=1, bitoff=12, ctype="__u16"), CField("urg", 12, 2, bits=1, bitoff=13, ctype="__u16"),
        CField("ece", 12, 2, bits=1, bitoff=14, ctype="__u16"), CField("cwr", 12, 2, bits=1, bitoff=15, ctype="__u16"),
        CField("window", 14, 2, ctype="__be16"), CField("check", 16, 2, ctype="__sum16"),
        CField("urg_ptr", 18, 2, ctype="__be16"),
    ]),
    "struct udphdr": _mk([
        CField("source", 0, 2, ctype="__be16"), CField("dest", 2, 2, ctype="__be16"),
        CField("len", 4, 2, ctype="__be16"), CField("check", 6, 2, ctype="__sum16"),
    ]),
    "struct ethhdr": _mk([
        CField("h_dest", 0, 1, array=6, ctype="unsigned char"), CField("h_source", 6, 1, array=6, ctype="unsigned char"),
        CField("h_proto", 12, 2, ctype="__be16"),
    ]),
}

# Virtual structs: fields read from model objects; offsets are not modelled.
VIRTUAL: Dict[str, Dict[str, CField]] = {
    "struct sk_buff": _mk([
        CField("head", 0, 8, pointee="unsigned char", ctype="unsigned char *"),
        CField("data", 0, 8, pointee="unsigned char", ctype="unsigned char *"),
        CField("len", 0, 4, ctype="unsigned int"), CField("data_len", 0, 4, ctype="unsigned int"),
        CField("mac_len", 0, 2, ctype="__u16"), CField("mac_header", 0, 2, ctype="__u16"),
        CField("network_header", 0, 2, ctype="__u16"), CField("transport_header", 0, 2, ctype="__u16"),
        CField("protocol", 0, 2, ctype="__be16"), CField("mark", 0, 4, ctype="__u32"),
        CField("dev", 0, 8, pointee="struct net_device", ctype="struct net_device *"),
        CField("_nfct", 0, 8, ctype="unsigned long"),
    ]),
    "struct net_device": _mk([
        CField("name", 0, 1, array=16, ctype="char"), CField("ifindex", 0, 4, signed=True, ctype="int"),
    ]),
    "struct nf_hook_state": _mk([
        CField("hook", 0, 1, ctype="u8"), CField("pf", 0, 1, ctype="u8"),
        CField("in", 0, 8, pointee="struct net_device", ctype="struct net_device *"),
        CField("out", 0, 8, pointee="struct net_device", ctype="struct net_device *"),
    ]),
    "struct nf_conn": _mk([
        CField("status", 0, 8, ctype="unsigned long"), CField("mark", 0, 4, ctype="u32"),
        CField("timeout", 0, 4, ctype="u32"),
    ]),
}

#: struct names bpftrace would find in the kernel's BTF but whose fields are not modelled
KNOWN_OPAQUE = {"struct sock", "struct net", "struct nf_conntrack_tuple", "struct nf_hook_entries",
                "struct nf_hook_ops", "struct task_struct", "struct nf_conntrack"}

C_INT = {"char": (1, True), "unsigned char": (1, False), "short": (2, True), "unsigned short": (2, False),
         "int": (4, True), "unsigned int": (4, False), "long": (8, True), "unsigned long": (8, False),
         "u8": (1, False), "u16": (2, False), "u32": (4, False), "u64": (8, False),
         "__u8": (1, False), "__u16": (2, False), "__u32": (4, False), "__u64": (8, False),
         "__be16": (2, False), "__be32": (4, False), "__sum16": (2, False),
         "s8": (1, True), "s16": (2, True), "s32": (4, True), "s64": (8, True)}


def struct_known(name: str) -> bool:
    return name in STRUCTS or name in VIRTUAL or name in KNOWN_OPAQUE


def sizeof(pointee: str) -> int:
    if pointee in C_INT:
        return C_INT[pointee][0]
    if pointee in STRUCTS:
        f = max(STRUCTS[pointee].values(), key=lambda f: f.offset + f.size * max(f.array, 1))
        return f.offset + f.size * max(f.array, 1)
    return 1 if pointee == "void" else 8


@dataclass(frozen=True)
class Ptr:
    addr: int
    pointee: str  # "struct iphdr", "unsigned char", "void"

    def __int__(self) -> int:
        return self.addr


@dataclass(frozen=True)
class Inet:
    raw: bytes

    def __str__(self) -> str:
        return ".".join(str(b) for b in self.raw)


@dataclass(frozen=True)
class KStack:
    frames: Tuple[str, ...]
    indent: int = 4  # bpftrace 0.17 prints frames 4 spaces in, 0.23 8 ([trace] kstack_indent)

    def text(self) -> str:
        pad = " " * self.indent
        return "\n" + "".join(f"{pad}{f}\n" for f in self.frames)


class Memory:
    """Kernel memory of one bpftrace run: byte buffers and virtual objects by address."""

    SKB_BASE = 0xFFFF888004A00000
    HEAD_BASE = 0xFFFF888005C00000
    CT_BASE = 0xFFFF888006E00000
    DEV_BASE = 0xFFFF888003200000

    def __init__(self):
        self.kstack_indent = 4
        self.buffers: List[Tuple[int, bytes]] = []
        self.objects: Dict[int, Tuple[str, Callable[[str], object]]] = {}

    def clear(self) -> None:
        self.buffers.clear()
        self.objects.clear()

    # registration of model objects -----------------------------------------------------
    def skb(self, skb) -> Ptr:
        addr = self.SKB_BASE + (skb.id % 0x10000) * 0x100
        if addr not in self.objects:
            head = self.HEAD_BASE + (skb.id % 0x10000) * 0x800
            buf, layout = skb.linear()
            self.buffers.append((head, buf))
            dev = self.dev(getattr(skb, "dev", "") or "eth0")

            def get(name, skb=skb, head=head, layout=layout, dev=dev):
                if name == "head":
                    return Ptr(head, "unsigned char")
                if name == "data":
                    return Ptr(head + layout["data"], "unsigned char")
                if name in layout:
                    return layout[name]
                if name == "len":
                    return skb.len
                if name == "data_len":
                    return 0
                if name == "protocol":  # htons(ETH_P_IP) read as a little-endian u16; 0 for AF_UNIX
                    return 0x0008 if getattr(skb, "eth_protocol", 0x0800) else 0
                if name == "mark":
                    return skb.mark
                if name == "dev":
                    return dev
                if name == "_nfct":
                    return (self.ct(skb.nfct).addr | (skb.ctinfo or 0)) if skb.nfct is not None else 0
                return 0

            self.objects[addr] = ("struct sk_buff", get)
        return Ptr(addr, "struct sk_buff")

    def dev(self, name: str) -> Ptr:
        addr = self.DEV_BASE + (sum(name.encode()) % 0x100) * 0x1000
        self.objects.setdefault(addr, ("struct net_device", lambda f, n=name: (
            n.encode() if f == "name" else 2 if f == "ifindex" else 0)))
        return Ptr(addr, "struct net_device")

    def ct(self, ct) -> Ptr:
        if ct is None:
            return Ptr(0, "struct nf_conn")
        addr = self.CT_BASE + (ct.id % 0x10000) * 0x140
        self.objects.setdefault(addr, ("struct nf_conn", lambda f, ct=ct: (
            ct.status if f == "status" else ct.mark if f == "mark" else int(ct.timeout) if f == "timeout" else 0)))
        return Ptr(addr, "struct nf_conn")

    def hook_state(self, state) -> Ptr:
        if state is None:
            return Ptr(0, "struct nf_hook_state")
        addr = 0xFFFFC90000003C00 + (id(state) % 0x100) * 0x40
        ind = self.dev(state.in_dev) if state.in_dev else Ptr(0, "struct net_device")
        outd = self.dev(state.out_dev) if state.out_dev else Ptr(0, "struct net_device")
        self.objects[addr] = ("struct nf_hook_state", lambda f, s=state: (
            s.hooknum if f == "hook" else 2 if f == "pf" else ind if f == "in" else outd if f == "out" else 0))
        return Ptr(addr, "struct nf_hook_state")

    # reads ------------------------------------------------------------------------------
    def read_bytes(self, addr: int, n: int) -> bytes:
        for base, buf in self.buffers:
            if base <= addr and addr + n <= base + len(buf):
                return buf[addr - base: addr - base + n]
        return bytes(n)  # probe_read of unmapped memory: bpftrace reads zeros

    def read_field(self, ptr: Ptr, f: CField):
        if ptr.pointee in VIRTUAL:
            obj = self.objects.get(ptr.addr)
            return obj[1](f.name) if obj else (Ptr(0, f.pointee) if f.pointee else 0)
        if f.array:
            return self.read_bytes(ptr.addr + f.offset, f.array)
        raw = self.read_bytes(ptr.addr + f.offset, f.size)
        fmt = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[f.size]
        v = _struct.unpack(fmt, raw)[0]
        if f.bits:
            v = (v >> f.bitoff) & ((1 << f.bits) - 1)
        elif f.signed and v >> (8 * f.size - 1):
            v -= 1 << (8 * f.size)
        if f.pointee:
            return Ptr(v, f.pointee)
        return v
