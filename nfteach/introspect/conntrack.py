"""Conntrack entries, walked with drgn on any :class:`drgn.Program` (sim, vm, live).

``nf_conntrack_hash`` is one table for every namespace; each ``struct nf_conn`` is on
it twice (``tuplehash[IP_CT_DIR_ORIGINAL]`` and ``[IP_CT_DIR_REPLY]``) once confirmed.
Unconfirmed entries are on per-CPU lists on 5.10 (``net->ct.pcpu_lists``); since
v5.19 (commit 8a75a2c17410 "netfilter: conntrack: remove unconfirmed list") there is
no such list and an unconfirmed entry is reachable only from its skb.

>>> for ct in nf_conntrack_hash_for_each(prog):                    # doctest: +SKIP
...     print(format_conntrack(nf_conn_entry(prog, ct)))
tcp      6 431999 ESTABLISHED src=192.168.122.1 dst=192.168.122.204 sport=46302 dport=22 ...
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

from ..render.ctline import conntrack_line

HZ = 250  # CONFIG_HZ of the profiled kernels
IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 2, 4, 8
TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
              "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp"}


def _hlist_nulls_nodes(head) -> Iterator:
    """``hlist_nulls_for_each_entry`` over ``struct nf_conntrack_tuple_hash`` nodes."""
    from drgn.helpers.linux.list_nulls import hlist_nulls_for_each_entry

    return hlist_nulls_for_each_entry("struct nf_conntrack_tuple_hash", head, "hnnode")


def nf_ct_tuplehash_to_ctrack(h):
    """``nf_ct_tuplehash_to_ctrack()``: the ``struct nf_conn *`` holding tuple hash ``h``."""
    from drgn import container_of

    d = h.tuple.dst.dir.value_()
    return container_of(h, "struct nf_conn", f"tuplehash[{d}]")


def nf_conntrack_hash_for_each(prog, net=None) -> Iterator:
    """Each confirmed ``struct nf_conn *``, once (its ORIGINAL tuple), in bucket order;
    only those of ``struct net *net`` if given (as ``ctnetlink_dump_table`` does)."""
    try:
        table = prog["nf_conntrack_hash"]
        size = prog["nf_conntrack_htable_size"].value_()
    except KeyError:
        return  # nf_conntrack is not loaded
    if not table:
        return
    want = net.value_() if net is not None else None
    for b in range(size):
        head = table[b].address_of_()
        if head.first.value_() & 1:  # empty: the nulls marker of this bucket
            continue
        for h in _hlist_nulls_nodes(head):
            if h.tuple.dst.dir.value_() != 0:
                continue
            ct = nf_ct_tuplehash_to_ctrack(h)
            if want is None or ct.ct_net.net.value_() == want:
                yield ct


def nf_ct_unconfirmed_for_each(prog, net) -> Iterator:
    """Each unconfirmed ``struct nf_conn *`` of ``net``, CPU by CPU (5.10 only; nothing on 6.x)."""
    from drgn.helpers.linux.cpumask import for_each_possible_cpu

    try:
        pcpu = net.ct.pcpu_lists
    except AttributeError:
        return  # v5.19+: no unconfirmed list
    offsets = prog["__per_cpu_offset"]
    for cpu in for_each_possible_cpu(prog):
        from drgn import Object

        lists = Object(prog, pcpu.type_, pcpu.value_() + offsets[cpu].value_())
        for h in _hlist_nulls_nodes(lists.unconfirmed.address_of_()):
            yield nf_ct_tuplehash_to_ctrack(h)


@dataclass(frozen=True)
class CtEntry:
    """What ``conntrack -L`` prints about one entry."""

    proto: int
    timeout: int
    state: str
    orig: Tuple[str, str, int, int]
    reply: Tuple[str, str, int, int]
    status: int
    mark: int
    use: int
    address: int


def _ip(u3) -> str:
    return str(ipaddress.IPv4Address(u3.ip.value_().to_bytes(4, "little")))


def _tuple(t) -> Tuple[str, str, int, int]:
    return (_ip(t.src.u3), _ip(t.dst.u3), socket.ntohs(t.src.u.all.value_()),
            socket.ntohs(t.dst.u.all.value_()))


def nf_ct_expires(prog, ct) -> int:
    """``nf_ct_expires(ct) / HZ``: seconds left (0 when past; relative while unconfirmed)."""
    timeout = ct.timeout.value_()
    if not ct.status.value_() & IPS_CONFIRMED:
        return max(timeout, 0) // HZ
    left = (timeout - prog["jiffies"].value_()) & 0xFFFFFFFF
    if left >= 0x80000000:  # (s32) negative: expired
        return 0
    return left // HZ


def _use(ct) -> int:
    use = ct.ct_general.use
    try:
        return use.refs.counter.value_()  # refcount_t (v5.x+ nf_conntrack: 6.x)
    except AttributeError:
        return use.counter.value_()  # atomic_t (5.10)


def nf_conn_entry(prog, ct) -> CtEntry:
    """Decode a ``struct nf_conn *``."""
    th = ct.tuplehash
    proto = th[0].tuple.dst.protonum.value_()
    state = ""
    if proto == 6:
        s = ct.proto.tcp.state.value_()
        state = TCP_STATES[s] if s < len(TCP_STATES) else str(s)
    return CtEntry(proto, nf_ct_expires(prog, ct), state, _tuple(th[0].tuple), _tuple(th[1].tuple),
                   ct.status.value_(), ct.mark.value_(), _use(ct), ct.value_())


def format_conntrack(e: CtEntry, secctx: str = "", use: Optional[int] = 1) -> str:
    """The ``conntrack -L`` line (``use=`` as ctnetlink reports it: 1, no extra reference)."""
    return conntrack_line(e.proto, e.timeout, e.state, e.orig, e.reply, e.status, e.mark, secctx,
                          use if use is not None else e.use)
