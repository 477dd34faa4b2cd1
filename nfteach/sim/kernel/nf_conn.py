"""``struct nf_conn`` and ``struct netns_ct``: a conntrack entry, its tuples and status
bits, and one namespace's part of the hash table (``include/net/netfilter/nf_conntrack.h``).
The functions that create, confirm and destroy entries: :mod:`.conntrack`."""
from __future__ import annotations

import itertools
import zlib
from typing import Dict, List, NamedTuple, Optional, Tuple

from . import tcp_ct
from .netfilter import HookOps

# enum ip_conntrack_status bits
IPS_EXPECTED, IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 1, 2, 4, 8
IPS_DYING = 1 << 9
IPS_UNTRACKED = 1 << 12
ORIGINAL, REPLY = 0, 1
NF_CT_EVICTION_RANGE = 8
#: the table-full log line of a profile without [klog] (nf_conntrack_core.c, every version)
TABLE_FULL = "nf_conntrack: table full, dropping packet"


class CtTuple(NamedTuple):
    """``struct nf_conntrack_tuple`` for IPv4 TCP/UDP."""

    src: str
    dst: str
    protonum: int
    sport: int
    dport: int

    def invert(self) -> CtTuple:
        return _tuple_new(CtTuple, (self.dst, self.src, self.protonum, self.dport, self.sport))


_tuple_new = tuple.__new__  # CtTuple(...) without the Python-level __new__ of a NamedTuple


def ct_tuple(src: str, dst: str, protonum: int, sport: int, dport: int) -> CtTuple:
    return _tuple_new(CtTuple, (src, dst, protonum, sport, dport))


_ct_ids = itertools.count(1)

# enum ip_conntrack_events: the bits of the event cache (nf_conntrack_ecache.h)
IPCT_NEW, IPCT_RELATED, IPCT_DESTROY, IPCT_REPLY, IPCT_ASSURED, IPCT_PROTOINFO = 0, 1, 2, 3, 4, 5
EVENT_NAMES = ((IPCT_NEW, "NEW"), (IPCT_REPLY, "SEEN_REPLY"), (IPCT_ASSURED, "ASSURED"), (IPCT_DESTROY, "DESTROY"))


class NfConn(tcp_ct.TcpCt):
    """``struct nf_conn``: one object per entry, its fields in slots (the memory of a
    10^6-entry table is mostly these); the two tuples are ``tuple`` ( = ``tuplehash[]``),
    the TCP state (``proto.tcp``) is part of the entry, as in the kernel."""

    __slots__ = ("id", "orig", "reply", "status", "timeout", "use", "cpu", "net", "packets_orig", "bytes_orig", "packets_reply", "bytes_reply", "on_unconfirmed",
                 "ecache")

    def __init__(self, net, orig: CtTuple, cpu: int):
        self.id = next(_ct_ids)
        # tuplehash[].tuple, as plain tuples: the garbage collector stops tracking a plain
        # tuple of strings and ints, not a CtTuple (a subclass), and a 10^6-entry table has
        # two per entry. ``tuple`` gives them as CtTuples.
        self.orig = orig
        self.reply = (orig[1], orig[0], orig[2], orig[4], orig[3])  # nf_ct_invert_tuple
        self.status = 0
        self.timeout = 0.0  # relative while unconfirmed, absolute (model seconds) once confirmed
        self.use = 0
        self.cpu = cpu
        self.state = None  # proto.tcp.state: None until tcp_init()
        self.net = net
        # nf_conn_acct: packets, bytes per direction
        self.packets_orig = self.bytes_orig = self.packets_reply = self.bytes_reply = 0
        self.on_unconfirmed = False
        self.ecache = 0  # events cached, not yet delivered (bit IPCT_*): nf_conntrack_ecache's ``cache``

    #: ct->mark and the zone: not modelled (docs/simulator.md), always 0
    mark = 0
    zone = 0

    @property
    def proto(self) -> Optional[tcp_ct.TcpCt]:
        """``ct->proto.tcp``: the entry itself (TcpCt is its base), once tcp_new() ran."""
        return None if self.state is None else self

    @property
    def tuple(self) -> Tuple[CtTuple, CtTuple]:
        return (_tuple_new(CtTuple, self.orig), _tuple_new(CtTuple, self.reply))

    @property
    def counters(self) -> List[int]:
        """packets, bytes (ORIGINAL), packets, bytes (REPLY)."""
        return [self.packets_orig, self.bytes_orig, self.packets_reply, self.bytes_reply]

    @property
    def events(self) -> List[str]:
        return [name for bit, name in EVENT_NAMES if self.ecache >> bit & 1]

    @property
    def confirmed(self) -> bool:
        return bool(self.status & IPS_CONFIRMED)

    @property
    def state_name(self) -> str:
        return "" if self.state is None else tcp_ct.STATE_NAMES[self.state]

    def __repr__(self) -> str:
        o = self.tuple[0]
        return f"<nf_conn {o.src}:{o.sport}>{o.dst}:{o.dport} {self.state_name} status={self.status:#x} use={self.use}>"


def hash_conntrack_raw(t: CtTuple) -> int:
    """Deterministic stand-in for the kernel's seeded siphash (bucket order is not ABI)."""
    src, dst, protonum, sport, dport = t
    return _crc32(f"{src}|{dst}|{protonum}|{sport}|{dport}".encode())


_crc32 = zlib.crc32  # one global lookup on the per-packet path, not a global and an attribute


class NetCt:
    """``struct netns_ct`` plus this namespace's part of the hash table.

    ``table`` maps each tuple of a confirmed entry (both directions) to the entry, in
    insertion order. What walks the hash chains gets them from it when it asks: a dump
    (:meth:`entries`, bucket by bucket), ``early_drop`` (:meth:`chains`: the entries by the
    bucket of their original tuple, made at its first use and kept up to date from then on
    by confirm and delete) and ``buckets`` (the full kernel view: both ``tuplehash[]`` of
    every entry, chained per bucket). A chain lists its entries in the order they were
    confirmed. (Kept only where asked for: a chain per bucket costs each new entry
    ~1.4 us and a list, bench/sim_syn.py.)
    """

    def __init__(self, net, ncpus: int):
        self.net = net
        self.count = 0
        self.users4 = 0
        self.users6 = 0
        self.defrag4 = False
        self.defrag6 = False
        self.hooks4: List[HookOps] = []
        self.hooks6: List[HookOps] = []
        self.defrag_ops4: List[HookOps] = []
        self.defrag_ops6: List[HookOps] = []
        self.table: Dict[CtTuple, NfConn] = {}
        self.chain_index: Optional[Dict[int, List[NfConn]]] = None  # chains(): made when first asked for
        self.unconfirmed: List[List[NfConn]] = [[] for _ in range(ncpus)]
        self.dying: List[NfConn] = []
        self.stat = {"found": 0, "invalid": 0, "insert": 0, "insert_failed": 0, "drop": 0,
                     "early_drop": 0, "error": 0, "search_restart": 0}

    @property
    def htable_size(self) -> int:
        """``nf_conntrack_htable_size``: one hash table size for all namespaces (the module's)."""
        return self.net.kernel.conntrack.htable_size

    def bucket(self, t: CtTuple) -> int:
        return hash_conntrack_raw(t) % self.htable_size

    def confirmed(self) -> List[NfConn]:
        """Confirmed entries in the order they were confirmed (their original tuples' order in ``table``)."""
        return [ct for t, ct in self.table.items() if t is ct.orig]

    def entries(self) -> List[NfConn]:
        """Confirmed entries in hash-bucket order, each once (what a dump walks)."""
        bucket = self.bucket
        return sorted(self.confirmed(), key=lambda ct: bucket(ct.orig))  # stable: chain order within a bucket

    def chains(self) -> Dict[int, List[NfConn]]:
        """Bucket -> the entries whose original tuple hashes there, in chain order."""
        if self.chain_index is None:
            index: Dict[int, List[NfConn]] = {}
            for ct in self.confirmed():
                index.setdefault(self.bucket(ct.orig), []).append(ct)
            self.chain_index = index
        return self.chain_index

    def lookup(self, t: CtTuple) -> Optional[Tuple[NfConn, int]]:
        """The confirmed entry with tuple ``t`` and the direction ``t`` is, or None."""
        ct = self.table.get(t)
        if ct is None:
            return None
        return ct, (REPLY if t == ct.reply else ORIGINAL)

    @property
    def buckets(self) -> Dict[int, List[Tuple[NfConn, int]]]:
        """Bucket -> [(entry, direction)] in chain order, both tuples of every entry."""
        out: Dict[int, List[Tuple[NfConn, int]]] = {}
        for t, ct in self.table.items():
            d = REPLY if t == ct.reply else ORIGINAL
            out.setdefault(self.bucket(t), []).append((ct, d))
        return out

    @property
    def tracking(self) -> bool:
        return bool(self.hooks4 or self.hooks6)
