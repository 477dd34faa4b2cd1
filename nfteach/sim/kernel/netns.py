"""``struct net``: one network namespace of the modelled kernel.

What firewall front ends (iptables, nft) use:

- ``ns.nf.register(HookOps(...))`` / ``ns.nf.unregister(ops)``: hooks of this namespace.
- ``ns.ct_get(pf)`` / ``ns.ct_put(pf)``: ``nf_ct_netns_get``/``put`` (``pf`` is
  ``"ipv4"``, ``"ipv6"`` or ``"inet"``) — a conntrack user switches tracking on here.
- ``ns.kernel.request_module(name)`` / ``ns.kernel.module_get(name, holder)`` /
  ``ns.kernel.module_put(name, holder)``: module loading and "Used by" counts.
- ``ns.kernel.profile``: the kernel profile (hook function names, versions, ...).
- ``ns.xt``: iptables-legacy tables by name; ``ns.nft``: the nftables state.
- ``ctinfo_state(skb)``: the ``ct state`` of a packet ("new", "established", ...).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, NamedTuple, Optional

from .netfilter import NetnsNf
from .skb import IP_CT_ESTABLISHED, IP_CT_IS_REPLY, IP_CT_NEW, IP_CT_RELATED, IP_CT_UNTRACKED

if TYPE_CHECKING:  # pragma: no cover
    from .kernel import Kernel


class HookState(NamedTuple):
    """``struct nf_hook_state``: which hook, which family, which namespace, devices.
    Read-only, like the kernel's (``NF_HOOK`` fills it in on its stack, hooks only read it)."""

    hooknum: int
    pf: str
    net: Netns
    in_dev: str = ""
    out_dev: str = ""


def ctinfo_state(skb) -> str:
    """What ``ct state`` / ``--ctstate`` sees for this packet."""
    if skb.ctinfo == IP_CT_UNTRACKED:
        return "untracked"
    if skb.nfct is None:
        return "invalid"
    base = skb.ctinfo % IP_CT_IS_REPLY if skb.ctinfo is not None else None
    return {IP_CT_NEW: "new", IP_CT_ESTABLISHED: "established", IP_CT_RELATED: "related"}.get(base, "invalid")


class Netns:
    """One namespace: its hooks, conntrack table, firewall tables, addresses and sockets."""

    def __init__(self, kernel: Kernel, name: str, inum: int):
        self.kernel = kernel
        self.name = name
        self.inum = inum
        self.nf = NetnsNf()
        self.xt: Dict[str, object] = {}  # iptables-legacy tables: name -> table
        self.xt6: Dict[str, object] = {}  # ip6tables-legacy tables (registered, never run: no IPv6 traffic)
        self.nft: Optional[object] = None  # nftables state, created on first use
        self.addr: Optional[str] = None
        self.peer: Optional[Netns] = None
        self.ct = None  # conntrack state (nfteach.sim.kernel.nf_conn.NetCt), set by the kernel
        self.sysctl: Dict[str, int] = {}

    # conntrack users ------------------------------------------------------------------
    def ct_get(self, pf: str) -> None:
        """``nf_ct_netns_get()``: register conntrack's hooks on the 0 -> 1 transition."""
        self.kernel.conntrack.netns_get(self, pf)

    def ct_put(self, pf: str) -> None:
        """``nf_ct_netns_put()``: unregister them on 1 -> 0."""
        self.kernel.conntrack.netns_put(self, pf)

    def __repr__(self) -> str:
        return f"<Netns {self.name}>"
