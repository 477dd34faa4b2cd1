"""``nf_ct_netns_get`` / ``nf_ct_netns_put`` and the nf_conntrack module's life cycle: which
namespaces use conntrack, and the hooks (and defrag hooks) registered for them
(``net/netfilter/nf_conntrack_proto.c``). Part of :class:`.conntrack.Conntrack`."""
from __future__ import annotations

from typing import List

from .netfilter import INT_MAX, LOCAL_IN, LOCAL_OUT, POST_ROUTING, PRE_ROUTING, HookOps
from .nf_conn import NetCt


class CtNetns:
    """Conntrack's users per namespace and family, and its hook registrations."""

    # -- module life cycle ----------------------------------------------------------------
    def load(self, enable_hooks: bool = False) -> None:
        self.loaded = True
        self.enable_hooks = enable_hooks
        for ns in self.kernel.namespaces.values():
            self.pernet_init(ns)

    def pernet_init(self, ns) -> None:
        """``nf_conntrack_pernet_init``: with enable_hooks, every namespace is a user."""
        if ns.ct is None:
            ns.ct = NetCt(ns, self.profile.ncpus)
        if self.enable_hooks:
            self.netns_get(ns, "inet")

    def unload(self) -> None:
        for ns in self.kernel.namespaces.values():
            if ns.ct is None:
                continue
            if self.enable_hooks:
                self.netns_put(ns, "inet")
            for ct in list(ns.ct.entries()):
                self.nf_ct_delete(ct)
            # conntrack's own hooks are gone with the module (users can't remain: modules hold it)
            for ops in ns.ct.hooks4 + ns.ct.hooks6:
                ns.nf.unregister(ops)
            ns.ct.hooks4, ns.ct.hooks6 = [], []
            ns.ct.users4 = ns.ct.users6 = 0
            defrag = (ns.ct.defrag4, ns.ct.defrag6, ns.ct.defrag_ops4, ns.ct.defrag_ops6)
            ns.ct = NetCt(ns, self.profile.ncpus)
            # nf_defrag_ipv4/6 are separate modules: their hooks outlive nf_conntrack on 5.10
            ns.ct.defrag4, ns.ct.defrag6, ns.ct.defrag_ops4, ns.ct.defrag_ops6 = defrag
        self.loaded = False
        self.enable_hooks = False

    # -- nf_ct_netns_get / put ------------------------------------------------------------
    def _ops(self, ns, pf: str) -> List[HookOps]:
        h = self.profile.hookfn
        v = "4" if pf == "ipv4" else "6"
        confirm_in_prio = INT_MAX if pf == "ipv4" else INT_MAX - 1
        mk = lambda hook, prio, role, fn: HookOps(pf, hook, prio, h[role], "conntrack", fn)  # noqa: E731
        # ipv4_conntrack_in/_local only call nf_conntrack_in (no frame of their own: NF_HOOK
        # opens the hook's frame): the hook calls it directly, one Python call less per packet
        return [
            mk(PRE_ROUTING, -200, "ct_in" + v, self.nf_conntrack_in),
            mk(LOCAL_OUT, -200, "ct_local" + v, self.nf_conntrack_in),
            mk(POST_ROUTING, INT_MAX, "confirm" + v, self.ipv4_confirm),
            mk(LOCAL_IN, confirm_in_prio, "confirm" + v, self.ipv4_confirm),
        ]

    def _defrag_enable(self, ns, pf: str) -> None:
        attr = "defrag4" if pf == "ipv4" else "defrag6"
        if getattr(ns.ct, attr):
            return
        fn = self.profile.hookfn["defrag4" if pf == "ipv4" else "defrag6"]
        # no function to call: the lab sends no fragments (and UNTRACKED skbs are skipped),
        # so ipv4_conntrack_defrag returns NF_ACCEPT; NF_HOOK still opens its frame
        ops = [HookOps(pf, PRE_ROUTING, -400, fn, "conntrack"), HookOps(pf, LOCAL_OUT, -400, fn, "conntrack")]
        ns.nf.register_many(ops)
        setattr(ns.ct, attr, True)
        setattr(ns.ct, "defrag_ops" + attr[-1], ops)

    def _defrag_disable(self, ns, pf: str) -> None:
        if self.profile.defrag_stays_registered:
            return
        attr = "defrag4" if pf == "ipv4" else "defrag6"
        if getattr(ns.ct, attr):
            ns.nf.unregister_many(getattr(ns.ct, "defrag_ops" + attr[-1]))
            setattr(ns.ct, attr, False)
            setattr(ns.ct, "defrag_ops" + attr[-1], [])

    def netns_get(self, ns, pf: str) -> None:
        if pf == "inet":
            self.netns_get(ns, "ipv4")
            self.netns_get(ns, "ipv6")
            return
        if ns.ct is None:
            ns.ct = NetCt(ns, self.profile.ncpus)
        users = "users4" if pf == "ipv4" else "users6"
        setattr(ns.ct, users, getattr(ns.ct, users) + 1)
        if getattr(ns.ct, users) > 1:
            return
        self._defrag_enable(ns, pf)
        ops = self._ops(ns, pf)
        ns.nf.register_many(ops)
        setattr(ns.ct, "hooks4" if pf == "ipv4" else "hooks6", ops)

    def netns_put(self, ns, pf: str) -> None:
        if pf == "inet":
            self.netns_put(ns, "ipv4")
            self.netns_put(ns, "ipv6")
            return
        if ns.ct is None:
            return
        users = "users4" if pf == "ipv4" else "users6"
        n = getattr(ns.ct, users)
        if n == 0:
            return
        setattr(ns.ct, users, n - 1)
        if n - 1 == 0:
            hooks = "hooks4" if pf == "ipv4" else "hooks6"
            ns.nf.unregister_many(getattr(ns.ct, hooks))
            setattr(ns.ct, hooks, [])
            self._defrag_disable(ns, pf)
