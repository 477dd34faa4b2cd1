"""The legacy iptables tables in a namespace (``net/ipv4/netfilter/ip_tables.c``,
``iptable_filter.c`` and friends): a table's chains and rules, its hooks registered at the
table's priority, and ``ipt_do_table`` walking them for a packet. Written by the
``iptables-legacy`` command (:mod:`nfteach.sim.tools.iptables`)."""
from __future__ import annotations

from typing import Dict, List

from .netfilter import NF_ACCEPT, NF_DROP, HookOps
from .nftables import kcall
from .skb import IP_CT_UNTRACKED
from .xtables import XtRule, nat_register

HOOKNUM = {"PREROUTING": 0, "INPUT": 1, "FORWARD": 2, "OUTPUT": 3, "POSTROUTING": 4}
# table: (builtin chains, priority, profile hookfn role); nat plugs into the NAT core
TABLES = {
    "filter": (("INPUT", "FORWARD", "OUTPUT"), 0, "xt_filter"),
    "raw": (("PREROUTING", "OUTPUT"), -300, "xt_raw"),
    "mangle": (("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"), -150, "xt_mangle"),
    "security": (("INPUT", "FORWARD", "OUTPUT"), 50, "xt_security"),
    "nat": (("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"), None, None),
}
NAT_PRIO = {"PREROUTING": -100, "INPUT": 100, "OUTPUT": -100, "POSTROUTING": 100}


class XtChain:
    def __init__(self, name: str, builtin: bool):
        self.name, self.builtin = name, builtin
        self.policy = "ACCEPT" if builtin else None
        self.pkts = self.bytes = 0
        self.rules: List[XtRule] = []


class XtTable:
    """One legacy table in one namespace, with its hooks registered."""

    def __init__(self, ns, name: str, family: str = "ipv4"):
        builtins, prio, role = TABLES[name]
        self.ns, self.name = ns, name
        self.chains: Dict[str, XtChain] = {c: XtChain(c, True) for c in builtins}
        v6 = family == "ipv6"
        module = f"ip6table_{name}" if v6 else f"iptable_{name}"
        # libiptc's first getsockopt needs ip_tables, which iptables modprobes itself when it
        # is missing; the kernel then autoloads the table (xt_find_table_lock): on vm 5.10
        # lsmod shows ip_tables loaded before nf_nat for `iptables-legacy -t nat -N FID`
        kcall(ns, "request_module", "ip6_tables" if v6 else "ip_tables")
        kcall(ns, "request_module", module)
        self.unplug = []
        for c in builtins:
            fn = self._hook(c)
            if name == "nat":
                self.unplug.append(nat_register(ns, family, HOOKNUM[c], NAT_PRIO[c], fn, module))
            else:
                ops = HookOps(family, HOOKNUM[c], prio, ns.kernel.profile.hookfn[role + ("6" if v6 else "4")], module,
                              fn=fn)
                ns.nf.register(ops)
                self.unplug.append(lambda o=ops: ns.nf.unregister(o))

    def release(self) -> None:
        """The module's pernet exit (rmmod of an unused table): its hooks go."""
        for unplug in self.unplug:
            unplug()
        self.unplug = []

    def _hook(self, chain: str):
        def ipt_do_table(skb, state):
            return self.do_table(chain, skb, state)

        return ipt_do_table

    def do_table(self, chain: str, skb, state) -> int:
        stack, c, i = [], self.chains[chain], 0
        while True:
            if i >= len(c.rules):
                if stack:
                    c, i = stack.pop()
                    continue
                c.pkts += 1
                c.bytes += skb.len
                return NF_DROP if c.policy == "DROP" else NF_ACCEPT
            r = c.rules[i]
            i += 1
            if not r.matches_skb(skb, state):
                continue
            r.pkts += 1
            r.bytes += skb.len
            if r.target in ("NOTRACK", "CT"):
                skb.nfct, skb.ctinfo = None, IP_CT_UNTRACKED
            elif r.target == "ACCEPT":
                return NF_ACCEPT
            elif r.target == "DROP":
                return NF_DROP
            elif r.target == "RETURN":
                if stack:
                    c, i = stack.pop()
                else:
                    i = len(c.rules)
            elif r.target in self.chains:
                stack.append((c, i))
                c, i = self.chains[r.target], 0
