"""The confirm hook (``nf_confirm``, ``__nf_conntrack_confirm`` in
``net/netfilter/nf_conntrack_core.c``): a new entry goes into the hash table when its first
packet leaves the last hook, then the entry's cached events are delivered. Part of
:class:`.conntrack.Conntrack`."""
from __future__ import annotations

from .netfilter import NF_ACCEPT, NF_DROP
from .nf_conn import IPCT_NEW, IPS_CONFIRMED, IPS_DYING
from .skb import IP_CT_IS_REPLY
from .tracer import _NULL, untraced_branch


@untraced_branch
class CtConfirm:
    """Confirming an entry: the hash insert under the buckets' locks."""

    def ipv4_confirm(self, skb, state) -> int:
        # 5.10/6.1: the hook function ipv4_confirm tail-calls nf_confirm; 6.18 registers nf_confirm itself
        with (_NULL if self.profile.hookfn.get("confirm4") == "nf_confirm" else self._t("nf_confirm", skb=skb)):
            ct = skb.nfct
            if ct is None:
                return NF_ACCEPT
            # nf_conntrack_confirm(), inline: confirm a new entry, then deliver its cached
            # events -- 5.10 after every accepted packet, 5.19+ only to an entry that has an
            # event cache (nf_ct_ecache_exist), which is the same here (``_ecache``)
            ret = NF_ACCEPT
            if not ct.status & IPS_CONFIRMED and not (skb.ctinfo is not None and skb.ctinfo >= IP_CT_IS_REPLY):
                ret = self.nf_conntrack_confirm(skb, state)
            if self._ecache and ret == NF_ACCEPT:
                self.nf_ct_deliver_cached_events(ct)
            return ret

    def nf_conntrack_confirm(self, skb, state) -> int:
        """``__nf_conntrack_confirm()``: insert a new entry under the two hash buckets' locks
        (the reply tuple is hashed here, the original's hash was kept from the lookup)."""
        ct = skb.nfct
        net = ct.net
        with self._t(self.profile.fn("confirm_core") or "__nf_conntrack_confirm"):
            with self._t("hash_conntrack_raw"):
                pass
            self._double_lock()
            self.nf_ct_del_from_dying_or_unconfirmed_list(ct)
            if ct.status & IPS_DYING:
                net.ct.stat["insert_failed"] += 1
                return self._confirm_failed()
            with self._t("get_random_u8"):  # 5.17+: a random limit on the chain walk (max_chainlen)
                pass
            t0, t1 = ct.orig, ct.reply
            nct = net.ct
            table = nct.table
            # both tuples must be free; each is hashed once (setdefault inserts if free)
            if table.setdefault(t0, ct) is not ct:
                nct.stat["insert_failed"] += 1
                return self._confirm_failed()
            if table.setdefault(t1, ct) is not ct:
                del table[t0]
                nct.stat["insert_failed"] += 1
                return self._confirm_failed()
            ct.timeout += self.kernel.now
            ct.use += 1
            ct.status |= IPS_CONFIRMED
            with self._t("__nf_conntrack_insert_prepare"):
                pass
            with self._t("__nf_conntrack_hash_insert"):
                # into the chains (the table above is their order; nf_conn.NetCt): the
                # bucket is the hash resolve_normal_ct took, computed where it is used
                index = nct.chain_index
                if index is not None:
                    index.setdefault(nct.bucket(t0), []).append(ct)
            self._double_unlock()
            with self._t("local_bh_enable"):
                pass
            nct.stat["insert"] += 1
            self.nf_conntrack_event_cache(IPCT_NEW, ct)
            return NF_ACCEPT

    # The two buckets' locks (nf_conntrack_locks[hash % 1024]): one lock when both tuples
    # hash to the same one. The kernel's hash is seeded at random, so which entry that is
    # differs from boot to boot; the model takes the usual case (1023 in 1024), two locks.
    def _double_lock(self) -> None:
        with self._t("nf_conntrack_double_lock"):
            with self._t("nf_conntrack_lock"):
                with self._t("spin_lock"):
                    pass
            with self._t("spin_lock"):  # spin_lock_nested(), a plain spin_lock without lockdep
                pass

    def _double_unlock(self) -> None:
        with self._t("nf_conntrack_double_unlock"):
            with self._t("spin_unlock"):
                pass
            with self._t("spin_unlock"):
                pass

    def _confirm_failed(self) -> int:
        """The dying and clash exits of __nf_conntrack_confirm: unlock, then NF_DROP."""
        self._double_unlock()
        with self._t("local_bh_enable"):
            pass
        return NF_DROP
