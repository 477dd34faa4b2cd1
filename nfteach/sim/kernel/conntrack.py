"""Connection tracking: ``net/netfilter/nf_conntrack_core.c`` and ``nf_conntrack_proto.c``.

Functions are named after the kernel's. The life of an entry:
``init_conntrack`` allocates it (unconfirmed, owned by the skb) -> the confirm hook at
INT_MAX inserts it into the hash table -> or a drop frees the skb and with it the entry.
"""
from __future__ import annotations

from typing import List, Optional

from .ct_confirm import CtConfirm
from .ct_netns import CtNetns
from .ecache import CtEcache
from .netfilter import (
    NF_ACCEPT,
    NF_DROP,
    PRE_ROUTING,
)
from .nf_conn import (  # noqa: F401 (the entry's names are this module's API too)
    EVENT_NAMES,
    IPCT_ASSURED,
    IPCT_DESTROY,
    IPCT_NEW,
    IPCT_PROTOINFO,
    IPCT_RELATED,
    IPCT_REPLY,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DYING,
    IPS_EXPECTED,
    IPS_SEEN_REPLY,
    IPS_UNTRACKED,
    NF_CT_EVICTION_RANGE,
    ORIGINAL,
    REPLY,
    TABLE_FULL,
    CtTuple,
    NetCt,
    NfConn,
    ct_tuple,
    hash_conntrack_raw,
)
from .skb import (
    ACK,
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IP_CT_IS_REPLY,
    IP_CT_NEW,
    IP_CT_UNTRACKED,
    IPPROTO_TCP,
    SYN,
)
from .tcp_ct import tcp_new, tcp_packet
from .tracer import _NULL, _Frame, untraced_branch


@untraced_branch
class Conntrack(CtNetns, CtConfirm, CtEcache):
    """The nf_conntrack module: kernel-wide state and the per-namespace functions."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.tracer = kernel.tracer
        self.profile = kernel.profile
        self.loaded = False
        self.enable_hooks = False
        self.nf_conntrack_max = self.profile.nf_conntrack_max
        self.htable_size = self.profile.nf_conntrack_buckets  # the `hashsize` module parameter
        self.tcp_loose = 1
        self._ecache = bool(self.profile.extra.get("ct_event_cache", False))  # ecache.py
        self.event_cb = not self.profile.modules  # ecache.py; Kernel keeps it with nf_conntrack_netlink
        self.dmesg: List[str] = []

    # -- tracing helper -------------------------------------------------------------------
    def _t(self, name: str, **args):
        tr = self.tracer
        return _Frame(tr, name, args) if tr.listeners else _NULL

    # -- hook functions -------------------------------------------------------------------
    def ipv4_conntrack_in(self, skb, state) -> int:
        return self.nf_conntrack_in(skb, state)

    def ipv4_conntrack_local(self, skb, state) -> int:
        return self.nf_conntrack_in(skb, state)

    # -- the packet path through conntrack -----------------------------------------------
    def nf_conntrack_in(self, skb, state) -> int:
        net = state.net
        with self._t("nf_conntrack_in", skb=skb):
            if skb.nfct is not None or skb.ctinfo == IP_CT_UNTRACKED:
                return NF_ACCEPT
            if skb.protocol != IPPROTO_TCP:
                net.ct.stat["invalid"] += 1
                return NF_ACCEPT
            with self._t("get_l4proto"):
                pass
            ret = self.resolve_normal_ct(net, skb, state)
            if ret is not None:
                return ret
            ct = skb.nfct
            direction = REPLY if skb.ctinfo >= IP_CT_IS_REPLY else ORIGINAL
            with self._t("nf_conntrack_handle_packet"):
                with self._t("nf_conntrack_tcp_packet"):
                    if state.hooknum == PRE_ROUTING:  # tcp_error: checksum of what comes in (nf_conntrack_checksum=1)
                        with self._t("nf_checksum"):
                            with self._t("nf_ip_checksum"):
                                if skb.csum_complete:  # not offloaded: summed over the packet
                                    with self._t("__skb_checksum_complete"):
                                        with self._t("__skb_checksum"):
                                            with self._t("csum_partial"):
                                                with self._t("do_csum"):
                                                    pass
                    if not ct.confirmed:  # tcp_new() ran in init_conntrack here: its traced calls
                        with self._t("tcp_new"):
                            if skb.flags & SYN and not skb.flags & ACK:  # a picked-up entry: no options read
                                with self._t("tcp_options"):
                                    pass
                    with self._t("spin_lock_bh"):  # ct->lock
                        pass
                    status, old_state = ct.status, ct.state
                    verdict, timeout, actions = tcp_packet(ct, skb, direction, status & IPS_SEEN_REPLY, status & IPS_ASSURED)
                    with self._t("nf_ct_seq_offset"):  # tcp_in_window
                        pass
                    with self._t("spin_unlock_bh"):
                        with self._t("local_bh_enable"):
                            pass
                    if ct.state != old_state:
                        self.nf_conntrack_event_cache(IPCT_PROTOINFO, ct)
                    if verdict == "kill":
                        # the first reply to an unanswered entry is a RST: nf_ct_kill_acct() counts
                        # the packet and deletes the entry, in tcp_packet (function_graph, 5.10/6.12)
                        self.nf_ct_kill_acct(ct, skb, direction)
                    elif timeout is not None and verdict not in ("reopen", "invalid", "ignore"):
                        self.nf_ct_refresh_acct(ct, timeout, skb, direction)
            if verdict != "accept":  # the others are rare: one test for the usual case
                if verdict == "reopen":
                    self.nf_ct_kill(ct)
                    self._skb_put(skb)
                    return self.nf_conntrack_in(skb, state)
                if verdict == "invalid":
                    net.ct.stat["invalid"] += 1
                    self._skb_put(skb)
                    return NF_ACCEPT
                if verdict == "ignore":
                    return NF_ACCEPT
                if verdict == "kill":  # nf_ct_kill_acct() deleted it in tcp_packet
                    return NF_ACCEPT
            if "assured" in actions:
                ct.status |= IPS_ASSURED
                self.nf_conntrack_event_cache(IPCT_ASSURED, ct)
            if skb.ctinfo == IP_CT_ESTABLISHED_REPLY and not ct.status & IPS_SEEN_REPLY:
                ct.status |= IPS_SEEN_REPLY
                self.nf_conntrack_event_cache(IPCT_REPLY, ct)
            return NF_ACCEPT

    def resolve_normal_ct(self, net, skb, state) -> Optional[int]:
        with self._t("resolve_normal_ct"):
            with self._t("nf_ct_get_tuple"):
                with self._t("nf_ct_get_tuple_ports"):
                    t = (skb.saddr, skb.daddr, skb.protocol, skb.sport, skb.dport)  # a CtTuple's fields
            with self._t("hash_conntrack_raw"):  # the value: where it is used (confirm, early_drop)
                pass
            with self._t("__nf_conntrack_find_get"):
                with self._t("rcu_read_lock"):
                    pass
                ct = net.ct.table.get(t)
                if ct is not None and self.nf_ct_is_expired(ct):  # an expired entry is deleted on the way
                    self.nf_ct_delete(ct)
                    ct = None
                with self._t("rcu_read_unlock"):
                    pass
            if ct is None:
                ct = self.init_conntrack(net, t, skb)
                if ct is None:
                    net.ct.stat["drop"] += 1
                    return NF_DROP
                skb.nfct, skb.ctinfo = ct, IP_CT_NEW
                return None
            net.ct.stat["found"] += 1
            ct.use += 1
            if t == ct.reply:
                ctinfo = IP_CT_ESTABLISHED_REPLY
            elif ct.status & IPS_SEEN_REPLY:
                ctinfo = IP_CT_ESTABLISHED
            else:
                ctinfo = IP_CT_NEW
            skb.nfct, skb.ctinfo = ct, ctinfo
            return None

    def nf_ct_is_expired(self, ct: NfConn) -> bool:
        return bool(ct.status & IPS_CONFIRMED) and ct.timeout <= self.kernel.now

    def init_conntrack(self, net, t: CtTuple, skb) -> Optional[NfConn]:
        with self._t("init_conntrack", skb=skb):
            with self._t("nf_ct_invert_tuple"):
                pass
            ct = self.__nf_conntrack_alloc(net, t)
            if ct is None:
                return None
            with self._t("nf_ct_ecache_ext_add"):
                self._ext_add()  # with nf_conntrack_events=1; 6.1's default 2 adds none without a listener
            self._pernet()  # nf_ct_pernet(net)->expect_count
            with self._t("__nf_ct_try_assign_helper"):
                with self._t("__nf_ct_helper_find"):
                    pass
            tcp_state = tcp_new(skb, self.tcp_loose)
            if tcp_state is None:
                self.nf_conntrack_free(ct)
                return None
            ct.tcp_init(tcp_state)
            ct.use = 1  # nf_conntrack_get: owned by the skb
            self.nf_ct_add_to_unconfirmed_list(ct)
            return ct

    # -- traced calls of kernel helpers (function_graph shows them; no model state) ---------
    def _pernet(self) -> None:
        """``nf_ct_pernet()`` -> ``net_generic()``: an RCU read-side section (where this
        kernel keeps the conntrack counters in the pernet area; ``[trace] uncalled`` otherwise)."""
        with self._t("net_generic"):
            with self._t("rcu_read_lock"):
                pass
            with self._t("rcu_read_unlock"):
                pass

    def _ext_add(self) -> None:
        """``nf_ct_ext_add``: the extension type under RCU, then ``krealloc`` of ct->ext."""
        with self._t("nf_ct_ext_add"):
            with self._t("rcu_read_lock"):
                pass
            with self._t("rcu_read_unlock"):
                pass
            with self._t("krealloc"):
                with self._t("__kmalloc_track_caller"):
                    with self._t("kmalloc_slab"):
                        pass
                    with self._t("should_failslab"):
                        pass
                with self._t("kfree"):
                    pass

    def __nf_conntrack_alloc(self, net, t: CtTuple) -> Optional[NfConn]:
        with self._t("__nf_conntrack_alloc"):
            self._pernet()  # the counter: nf_ct_pernet(net)->count
            net.ct.count += 1
            mx = self.nf_conntrack_max
            if mx and net.ct.count > mx:
                if not self.early_drop(net, t):
                    net.ct.count -= 1
                    self._table_full(net)
                    return None
            with self._t("kmem_cache_alloc"):
                with self._t("should_failslab"):
                    pass
            return NfConn(net, t, self.kernel.cpu)

    def _table_full(self, net) -> None:
        """The printk of a full table. (Its own method: the comprehension's closure over
        ``net`` would give every call of ``__nf_conntrack_alloc`` a cell to allocate.)"""
        # the kernel's printk formats ([klog], read by `nfteach vm derive`); a
        # "%u" one is for namespaces other than init_net (6.18)
        fmts = self.profile.extra.get("klog", {}).get("table_full") or [TABLE_FULL]
        per_ns = [f for f in fmts if "%u" in f and net.name != "init_net"]
        msg = per_ns[0].replace("%u", str(net.inum)) if per_ns else next((f for f in fmts if "%" not in f), TABLE_FULL)
        self.dmesg.append(msg)
        self.kernel.log(msg)

    def early_drop(self, net, t: CtTuple) -> bool:
        """Evict one confirmed, non-ASSURED entry from up to 8 buckets from the new tuple's on
        (the kernel passes the hash resolve_normal_ct took; here its bucket is computed now)."""
        n = net.ct.htable_size
        start = net.ct.bucket(t)
        for i in range(NF_CT_EVICTION_RANGE):
            for ct in net.ct.chains().get((start + i) % n, ()):
                if not ct.status & IPS_ASSURED and ct.confirmed and not ct.status & IPS_DYING:
                    self.nf_ct_delete(ct)
                    net.ct.stat["early_drop"] += 1
                    return True
        return False

    def nf_ct_add_to_unconfirmed_list(self, ct: NfConn) -> None:
        with self._t("nf_ct_add_to_unconfirmed_list", ct=ct):
            with self._t("spin_lock"):  # the per-cpu list lock
                pass
            ct.net.ct.unconfirmed[ct.cpu].append(ct)
            ct.on_unconfirmed = True
            # init_conntrack's local_bh_enable() right after the insert (the bh-disabled
            # section exists with the unconfirmed list: gone with it in 6.1)
            with self._t("local_bh_enable"):
                pass

    def nf_ct_del_from_dying_or_unconfirmed_list(self, ct: NfConn) -> None:
        with self._t(self.profile.fn("del_unconfirmed") or "nf_ct_del_from_unconfirmed_list", ct=ct):
            with self._t("spin_lock"):  # the per-cpu list's lock
                pass
            nct = ct.net.ct
            lst = nct.unconfirmed[ct.cpu]
            if ct in lst:
                lst.remove(ct)
            dying = nct.dying
            if dying and ct in dying:
                dying.remove(ct)
            ct.on_unconfirmed = False

    def nf_ct_refresh_acct(self, ct: NfConn, timeout: float, skb, direction: int) -> None:
        with self._t("__nf_ct_refresh_acct"):
            if ct.status & IPS_CONFIRMED:
                ct.timeout = self.kernel.now + timeout
            else:
                ct.timeout = timeout
            self._acct_add(ct, skb, direction)

    def _acct_add(self, ct: NfConn, skb, direction: int) -> None:
        with self._t("nf_ct_acct_add"):
            if direction == ORIGINAL:
                ct.packets_orig += 1
                ct.bytes_orig += skb.len
            else:
                ct.packets_reply += 1
                ct.bytes_reply += skb.len

    def nf_ct_kill_acct(self, ct: NfConn, skb, direction: int) -> None:
        """``nf_ct_kill_acct()``: count the packet, then ``nf_ct_delete()`` (an unconfirmed
        entry is only marked dying: it is deleted when the skb lets go of it)."""
        with self._t("nf_ct_kill_acct", ct=ct, skb=skb):
            self._acct_add(ct, skb, direction)
            self._kill(ct)

    # -- deletion and freeing -------------------------------------------------------------
    def _unhash(self, ct: NfConn) -> None:
        """Both tuples out of the hash table, under their buckets' locks."""
        with self._t("hash_conntrack_raw"):
            pass
        with self._t("hash_conntrack_raw"):
            pass
        self._double_lock()
        with self._t("nf_ct_remove_expectations"):
            pass
        self._double_unlock()
        net = ct.net
        table = net.ct.table
        for t in (ct.orig, ct.reply):
            if table.get(t) is ct:
                del table[t]
                index = net.ct.chain_index
                if t is ct.orig and index is not None:
                    b = net.ct.bucket(t)
                    lst = index.get(b, [])
                    lst[:] = [x for x in lst if x is not ct]
                    if not lst:
                        index.pop(b, None)

    def nf_ct_delete(self, ct: NfConn) -> None:
        """``nf_ct_delete()``: the DESTROY event (5.10: to ctnetlink, with every entry's event
        cache), then out of the hash table under both buckets' locks; 5.10 moves it to the
        dying list (the per-cpu lists went in 5.19: ``__nf_ct_delete_from_lists``)."""
        with self._t("nf_ct_delete"):
            if ct.status & IPS_DYING:
                return
            ct.status |= IPS_DYING
            if self._ecache and self.event_cb:
                self.nf_conntrack_eventmask_report(ct)
            if self.profile.has_unconfirmed_list:
                with self._t("nf_ct_delete_from_lists"):
                    with self._t("nf_ct_helper_destroy"):
                        pass
                    self._unhash(ct)
                    with self._t("nf_ct_add_to_dying_list"):
                        with self._t("spin_lock"):
                            ct.net.ct.dying.append(ct)
                    with self._t("local_bh_enable"):
                        pass
            else:
                with self._t("nf_ct_helper_destroy"):
                    pass
                with self._t("__nf_ct_delete_from_lists"):
                    self._unhash(ct)
                with self._t("local_bh_enable"):
                    pass
            self.nf_ct_put(ct)

    def nf_ct_kill(self, ct: NfConn) -> None:
        """``nf_ct_kill()``: a static inline wrapper of ``nf_ct_delete()``."""
        with self._t("nf_ct_kill"):
            self._kill(ct)

    def _kill(self, ct: NfConn) -> None:
        if ct.confirmed:
            self.nf_ct_delete(ct)
        else:
            ct.status |= IPS_DYING

    def nf_ct_put(self, ct: NfConn) -> None:
        ct.use -= 1
        if ct.use <= 0:
            self.nf_conntrack_destroy(ct)

    def nf_conntrack_destroy(self, ct: NfConn) -> None:
        with self._t("nf_conntrack_destroy", ct=ct):
            with self._t(self.profile.fn("destroy") or "destroy_conntrack", ct=ct):
                self.nf_ct_del_from_dying_or_unconfirmed_list(ct)
                self.nf_conntrack_free(ct)

    def nf_conntrack_free(self, ct: NfConn) -> None:
        with self._t("nf_conntrack_free", ct=ct):
            ct.net.ct.count -= 1

    def _skb_put(self, skb) -> None:
        ct = skb.nfct
        skb.nfct, skb.ctinfo = None, None
        if ct is not None:  # nf_ct_put(ct), inline: it runs for every packet
            ct.use -= 1
            if ct.use <= 0:
                self.nf_conntrack_destroy(ct)

    def skb_release(self, skb) -> None:
        """``skb_release_head_state`` -> ``nf_conntrack_put``: the skb lets go of its entry."""
        if skb.nfct is not None:
            with self._t("nf_conntrack_put"):
                self._skb_put(skb)

    # -- flush and garbage collection -----------------------------------------------------
    def flush(self, net) -> None:
        for ct in list(net.ct.entries()):
            self.nf_ct_delete(ct)

    def gc(self, net) -> None:
        """Expired entries go away (``gc_worker`` and lookups both do this)."""
        for ct in list(net.ct.entries()):
            if self.nf_ct_is_expired(ct):
                self.nf_ct_delete(ct)

    def expires(self, ct: NfConn) -> int:
        """``nf_ct_expires()/HZ`` as ctnetlink reports it (whole seconds, rounded down)."""
        if not ct.confirmed:
            return int(ct.timeout)
        return max(int(ct.timeout - self.kernel.now), 0)
