"""Netfilter core: per-namespace, per-family hook tables and ``nf_hook_slow``.

Modelled on ``net/netfilter/core.c``. The ordering rule is the kernel's
``nf_hook_entries_grow()``: a new hook goes *before* existing hooks of equal priority.

>>> nf = NetnsNf()
>>> nf.register(HookOps("ipv4", LOCAL_IN, 2147483647, "nft_do_chain_ipv4", "nft"))
>>> nf.register(HookOps("ipv4", LOCAL_IN, 2147483647, "ipv4_confirm", "conntrack"))
>>> [o.hook for o in nf.entries("ipv4", LOCAL_IN)]
['ipv4_confirm', 'nft_do_chain_ipv4']
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from ...model import netfilter as _names

# enum nf_inet_hooks (include/uapi/linux/netfilter.h)
PRE_ROUTING, LOCAL_IN, FORWARD, LOCAL_OUT, POST_ROUTING = range(5)
NF_INET_NUMHOOKS = 5
NF_INET_INGRESS = NF_INET_NUMHOOKS
HOOK_NAMES = _names.HOOK_NAMES
NFT_HOOK_NAMES = _names.NFT_HOOK_WORDS

# verdicts (include/uapi/linux/netfilter.h)
NF_DROP, NF_ACCEPT, NF_STOLEN, NF_QUEUE, NF_REPEAT, NF_STOP = range(6)
VERDICT_NAMES = {NF_DROP: "DROP", NF_ACCEPT: "ACCEPT", NF_STOLEN: "STOLEN", NF_QUEUE: "QUEUE",
                 NF_REPEAT: "REPEAT", NF_STOP: "STOP"}

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
MAX_HOOK_COUNT = 1024
FAMILIES = ("ipv4", "ipv6")


class HookError(Exception):
    """Registration refused (as -E2BIG / -EBUSY in the kernel)."""


@dataclass(eq=False)
class HookOps:
    """``struct nf_hook_ops`` plus who registered it (for pictures and teaching)."""

    pf: str
    hooknum: int
    priority: int
    hook: str
    owner: str = ""
    fn: Optional[Callable] = field(default=None, repr=False)
    priv: object = field(default=None, repr=False)

    def __post_init__(self):
        if not INT_MIN <= self.priority <= INT_MAX:
            raise HookError(f"priority {self.priority} is outside int32")


def grow_order(existing: List[HookOps], reg: HookOps) -> List[HookOps]:
    """The merge loop of ``nf_hook_entries_grow()``: insert ``reg`` before the first
    existing entry whose priority is >= its own (new hooks run first among equals)."""
    out: List[HookOps] = []
    inserted = False
    for old in existing:
        if inserted or reg.priority > old.priority:
            out.append(old)
        else:
            out.append(reg)
            out.append(old)
            inserted = True
    if not inserted:
        out.append(reg)
    return out


class NetnsNf:
    """``struct netns_nf``: ``hooks_ipv4[]`` and ``hooks_ipv6[]`` of one namespace."""

    def __init__(self):
        #: the hook entries of each (family, hook), in run order. Like the kernel's
        #: ``nf_hook_entries`` blob, a tuple is never changed: (un)registering swaps in a new
        #: one, so a packet walking the old one is not disturbed (RCU in the kernel).
        self.hooks: Dict[Tuple[str, int], Tuple[HookOps, ...]] = {
            (pf, h): () for pf in FAMILIES for h in range(NF_INET_NUMHOOKS)
        }
        #: ``hooks_ipv4[]``: the same tuples indexed by hook number (what NF_HOOK reads)
        self.hooks_ipv4: List[Tuple[HookOps, ...]] = [()] * NF_INET_NUMHOOKS
        #: the last ``nf_hook_state`` NF_HOOK made for each ipv4 hook (it is read-only: the
        #: next packet through the same hook and devices reuses it instead of making one)
        self.states_ipv4: List[Optional[tuple]] = [None] * NF_INET_NUMHOOKS
        #: called with (event, ops) after every change; the tracer and pictures listen
        self.listeners: List[Callable] = []

    def entries(self, pf: str, hooknum: int) -> List[HookOps]:
        return list(self.hooks[(pf, hooknum)])

    def _set(self, key: Tuple[str, int], entries: Tuple[HookOps, ...]) -> None:
        self.hooks[key] = entries
        if key[0] == "ipv4":
            self.hooks_ipv4[key[1]] = entries

    def register(self, ops: HookOps) -> None:
        """``nf_register_net_hook`` for one family (callers split NFPROTO_INET)."""
        key = (ops.pf, ops.hooknum)
        if key not in self.hooks:
            raise HookError(f"no hook {ops.pf} {ops.hooknum}")
        cur = self.hooks[key]
        if len(cur) >= MAX_HOOK_COUNT:
            raise HookError("too many hooks (E2BIG)")
        self._set(key, tuple(grow_order(list(cur), ops)))
        for cb in self.listeners:
            cb("register", ops)

    def unregister(self, ops: HookOps) -> None:
        key = (ops.pf, ops.hooknum)
        cur = self.hooks[key]
        for i, o in enumerate(cur):
            if o is ops:
                self._set(key, cur[:i] + cur[i + 1:])
                break
        else:
            raise HookError(f"hook {ops.hook} not registered")
        for cb in self.listeners:
            cb("unregister", ops)

    def register_many(self, ops_list) -> None:
        for o in ops_list:
            self.register(o)

    def unregister_many(self, ops_list) -> None:
        for o in ops_list:
            self.unregister(o)
