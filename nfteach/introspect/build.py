"""Write the simulated kernel's objects into memory regions, at the kernel's offsets.

Called by :meth:`nfteach.introspect.memory.Image.refresh`; see that module for the map.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from .memory import (
    AF_INET,
    DYING_NULLS_VAL,
    NFPROTO,
    PERCPU_BASE,
    PERCPU_PTR_BASE,
    PERCPU_STRIDE,
    UNCONFIRMED_NULLS_VAL,
    Blob,
    Image,
    Region,
    _guess_module,
    be16,
    be32,
)

NF_INET_NUMHOOKS = 5
STATIC_OWNERS = ("conntrack", "lsm", "nf_nat")  # their nf_hook_ops are static arrays


def _nulls(v: int) -> int:
    return (v << 1) | 1


def build_image(img: Image) -> List[Region]:
    k = img.kernel
    regions: List[Region] = []
    out = regions.append

    def emit(b: Blob) -> None:
        out(Region(b.address, len(b.buf), bytes(b.buf)))

    objs = img.object_types()
    net_size = img.sizeof("struct net")
    nss = sorted(k.namespaces.values(), key=lambda n: n.name != "init_net")
    net_addr: Dict[str, int] = {}
    for ns in nss:
        if ns.name == "init_net":
            net_addr[ns.name] = img.global_addr("init_net", net_size)
        else:
            net_addr[ns.name] = img.kmalloc(("net", ns.name), net_size, keep=ns, align=64)
    nets = {ns.name: Blob(img, "struct net", net_addr[ns.name]) for ns in nss}

    # net_namespace_list: a circular list through struct net.list
    head = Blob(img, "struct list_head", img.global_addr("net_namespace_list", 16))
    links = [head.address] + [nets[ns.name].addr_of("list") for ns in nss]
    blobs_of_link = {head.address: (head, "")}
    for ns in nss:
        blobs_of_link[nets[ns.name].addr_of("list")] = (nets[ns.name], "list.")
    for i, a in enumerate(links):
        b, prefix = blobs_of_link[a]
        b.put(prefix + "next", links[(i + 1) % len(links)])
        b.put(prefix + "prev", links[i - 1])
    emit(head)

    # hooks: struct nf_hook_entries + the nf_hook_ops * array + the rcu head
    ops_size = img.sizeof("struct nf_hook_ops")
    rcu_size = img.sizeof("struct nf_hook_entries_rcu_head")
    for ns in nss:
        net = nets[ns.name]
        net.put("ns.inum", ns.inum)
        for pf in ("ipv4", "ipv6"):
            for h in range(NF_INET_NUMHOOKS):
                lst = ns.nf.hooks.get((pf, h), [])
                if not lst:
                    continue  # __nf_hook_entries_try_shrink() leaves NULL when none are left
                n = len(lst)
                size = 8 + n * 16 + n * 8 + rcu_size
                key = ("entries", ns.name, pf, h, tuple(map(id, lst)))
                addr = img.kmalloc(key, size, keep=list(lst))
                e = Blob(img, "struct nf_hook_entries", addr, size)
                e.put("num_hook_entries", n)
                for i, ops in enumerate(lst):
                    ops_addr = _ops(img, ops, ops_size, emit)
                    e.put(f"hooks[{i}].hook", img.function(ops.hook))
                    e.buf[8 + n * 16 + i * 8:8 + n * 16 + i * 8 + 8] = ops_addr.to_bytes(8, "little")
                rcu = 8 + n * 24
                e.buf[rcu + 16:rcu + 24] = addr.to_bytes(8, "little")  # ->allocation
                emit(e)
                net.put(f"nf.hooks_{pf}[{h}]", addr)

    # conntrack
    hz = 250
    jiffies = img.jiffies()
    out(Region(img.global_addr("jiffies", 8), 8, jiffies.to_bytes(8, "little")))
    _cpus(img, emit, out)
    ct_blobs: Dict[int, Tuple[Blob, object]] = {}

    def conn(ct) -> Blob:
        if id(ct) in ct_blobs:
            return ct_blobs[id(ct)][0]
        size = img.sizeof("struct nf_conn")
        b = Blob(img, "struct nf_conn", img.kmalloc(("ct", id(ct)), size, keep=ct, align=64))
        b.put("ct_general.use", max(ct.use, 0))
        if ct.confirmed:
            b.put("timeout", jiffies + round((ct.timeout - k.now) * hz))
        else:
            b.put("timeout", round(ct.timeout * hz))  # relative until confirmed
        b.put("status", ct.status)
        if b.has("cpu"):
            b.put("cpu", ct.cpu)
        b.put("ct_net.net", net_addr.get(ct.net.name, 0))
        b.put("mark", ct.mark)
        b.put("proto.tcp.state", ct.proto.state if ct.proto else 0)
        for d, t in enumerate(ct.tuple):
            p = f"tuplehash[{d}].tuple."
            b.put(p + "src.u3.ip", be32(t.src))
            b.put(p + "src.u.all", be16(t.sport))
            b.put(p + "src.l3num", AF_INET)
            b.put(p + "dst.u3.ip", be32(t.dst))
            b.put(p + "dst.u.all", be16(t.dport))
            b.put(p + "dst.protonum", t.protonum)
            b.put(p + "dst.dir", d)
        ct_blobs[id(ct)] = (b, ct)
        return b

    def chain(slot_addr: int, write_slot, items, end: int) -> None:
        """An hlist_nulls chain through tuplehash[d].hnnode, ended by the nulls value ``end``."""
        prev_next = slot_addr
        nodes = [(conn(ct), d) for ct, d in items]
        write_slot(nodes[0][0].addr_of(f"tuplehash[{nodes[0][1]}].hnnode") if nodes else end)
        for i, (b, d) in enumerate(nodes):
            p = f"tuplehash[{d}].hnnode."
            nxt = nodes[i + 1][0].addr_of(f"tuplehash[{nodes[i + 1][1]}].hnnode") if i + 1 < len(nodes) else end
            b.put(p + "next", nxt)
            b.put(p + "pprev", prev_next)
            prev_next = b.addr_of(p + "next")

    if "nf_conntrack_hash" in objs:
        size = k.conntrack.htable_size
        hash_addr = img.vmalloc(("nf_conntrack_hash", size), size * 8)
        out(Region(img.global_addr("nf_conntrack_hash", 8), 8, hash_addr.to_bytes(8, "little")))
        out(Region(img.global_addr("nf_conntrack_htable_size", 4), 4, size.to_bytes(4, "little")))
        buckets: Dict[int, list] = {}
        for ns in nss:
            if ns.ct is not None:
                for b, lst in ns.ct.buckets.items():
                    buckets.setdefault(b % size, []).extend(lst)
        heads: Dict[int, int] = {}
        for b in sorted(buckets):
            chain(hash_addr + 8 * b, lambda v, b=b: heads.__setitem__(b, v), buckets[b], _nulls(b))
        out(Region(hash_addr, size * 8, fn=lambda off, n: _hash_read(heads, off, n)))

    has_pcpu = nets and next(iter(nets.values())).has("ct.pcpu_lists")
    for idx, ns in enumerate(nss):
        net = nets[ns.name]
        if ns.ct is not None and net.has("ct.count"):
            net.put("ct.count", ns.ct.count)
        if has_pcpu and ns.ct is not None:
            ptr = PERCPU_PTR_BASE + 0x40 * idx
            net.put("ct.pcpu_lists", ptr)
            for cpu in range(k.profile.ncpus):
                pc = Blob(img, "struct ct_pcpu", PERCPU_BASE + cpu * PERCPU_STRIDE + ptr)
                unc = [(ct, 0) for ct in ns.ct.unconfirmed[cpu]]
                dying = [(ct, 0) for ct in ns.ct.dying if ct.cpu == cpu]
                chain(pc.addr_of("unconfirmed"), lambda v, pc=pc: pc.put("unconfirmed.first", v),
                      unc, _nulls(UNCONFIRMED_NULLS_VAL))
                chain(pc.addr_of("dying"), lambda v, pc=pc: pc.put("dying.first", v),
                      dying, _nulls(DYING_NULLS_VAL))
                emit(pc)
        emit(net)
    for b, _ct in ct_blobs.values():
        emit(b)
    return regions


def _hash_read(heads: Dict[int, int], off: int, n: int) -> bytes:
    first, last = off // 8, (off + n - 1) // 8
    buf = bytearray()
    for i in range(first, last + 1):
        buf += heads.get(i, _nulls(i)).to_bytes(8, "little")
    s = off - first * 8
    return bytes(buf[s:s + n])


def _ops(img: Image, ops, size: int, emit) -> int:
    """The ``struct nf_hook_ops`` of a registration: static data or kmalloc'd."""
    key = ("ops", id(ops))
    if key not in img._addr:
        if ops.owner in STATIC_OWNERS:
            mod = _guess_module(ops.hook) if img.kernel.profile.modules else "vmlinux"
            if ops.owner == "lsm":
                mod = "vmlinux"
            img._addr[key] = img.static(mod, size)
            img._keep.append(ops)
        else:
            img.kmalloc(key, size, keep=ops)
    addr = img._addr[key]
    b = Blob(img, "struct nf_hook_ops", addr)
    b.put("hook", img.function(ops.hook))
    b.put("pf", NFPROTO.get(ops.pf, 0))
    b.put("hooknum", ops.hooknum)
    b.put("priority", ops.priority)
    if b.has("hook_ops_type"):
        nft = ops.owner.startswith("nft") or ops.hook.startswith("nft_")
        # a bit field: 8 bits at the start of its byte (layout [name, off, type, 8, 0])
        off, _ = img.member("struct nf_hook_ops", "hook_ops_type")
        b.buf[off] = 1 if nft else 0  # NF_HOOK_OP_NF_TABLES
    emit(b)
    return addr


def _cpus(img: Image, emit, out) -> None:
    k = img.kernel
    objs = img.object_types()
    n = k.profile.ncpus
    if "__per_cpu_offset" in objs:
        length = int(objs["__per_cpu_offset"].rsplit("[", 1)[1].rstrip("]"))
        data = b"".join((PERCPU_BASE + c * PERCPU_STRIDE if c < n else 0).to_bytes(8, "little")
                        for c in range(length))
        out(Region(img.global_addr("__per_cpu_offset", 8 * length), 8 * length, data))
    if "__cpu_possible_mask" in objs:
        size = img.sizeof("struct cpumask")
        bits = ((1 << n) - 1).to_bytes(size, "little")
        out(Region(img.global_addr("__cpu_possible_mask", size), size, bits))
    if "nr_cpu_ids" in objs:
        out(Region(img.global_addr("nr_cpu_ids", 4), 4, n.to_bytes(4, "little")))
