"""Netfilter hooks, walked with drgn on any :class:`drgn.Program` (sim, vm, live).

Helpers are named after the kernel objects they walk (``include/linux/netfilter.h``,
``include/net/netns/netfilter.h``).

>>> for ops in nf_hook_entries_for_each(prog, prog["init_net"].nf.hooks_ipv4[0]):  # doctest: +SKIP
...     print(ops.priority.value_(), prog.symbol(ops.hook).name)
-400 ipv4_conntrack_defrag
-200 ipv4_conntrack_in
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Tuple

from ..model.netfilter import HOOK_NAMES

HOOKS = HOOK_NAMES
FAMILIES = (("ipv4", "hooks_ipv4"), ("ipv6", "hooks_ipv6"))

#: family -> hook -> [(priority, callback name)] in run order
HookTable = Dict[str, Dict[str, List[Tuple[int, str]]]]


def nf_hook_entries_get_hook_ops(prog, entries):
    """``struct nf_hook_ops **`` right after ``entries->hooks[num_hook_entries]``
    (``nf_hook_entries_get_hook_ops()``, include/linux/netfilter.h)."""
    from drgn import cast

    num = entries.num_hook_entries.value_()
    return cast("struct nf_hook_ops **", entries.hooks[num].address_of_())


def nf_hook_entries_for_each(prog, entries) -> Iterator:
    """Each ``struct nf_hook_ops *`` of a ``struct nf_hook_entries *``, in run order.

    A NULL ``entries`` (no hooks at that point) yields nothing.
    """
    if not entries:
        return
    ops = nf_hook_entries_get_hook_ops(prog, entries)
    for i in range(entries.num_hook_entries.value_()):
        yield ops[i]


def hook_name(prog, fn) -> str:
    """The symbol name of a hook function pointer (its address in hex if it has none)."""
    addr = fn.value_()
    try:
        return prog.symbol(addr).name
    except LookupError:
        return hex(addr)


def netns_nf_hooks(prog, net=None) -> HookTable:
    """The IPv4 and IPv6 hooks of ``struct net *net`` (default ``init_net``): only the
    ``NF_INET_NUMHOOKS`` entries each array has (``NF_INET_INGRESS`` is not stored there)."""
    if net is None:
        net = prog["init_net"].address_of_()
    table: HookTable = {}
    for family, member in FAMILIES:
        arr = getattr(net.nf, member)
        table[family] = {
            name: [(ops.priority.value_(), hook_name(prog, ops.hook))
                   for ops in nf_hook_entries_for_each(prog, arr[i])]
            for i, name in enumerate(HOOKS)
        }
    return table


def format_hooks(table: HookTable) -> str:
    """The article tool's text: ``       -400 → ipv4_conntrack_defrag`` (equal priorities joined)."""
    from ..render.nfhooks import format_nf_hooks, group_by_priority

    return format_nf_hooks({(family, hook): group_by_priority(table[family].get(hook, []))
                            for family in table for hook in HOOKS}, hooks=HOOKS, families=sorted(table))


def for_each_net(prog) -> Iterator:
    """Every ``struct net *`` on ``net_namespace_list`` (init_net first)."""
    from drgn.helpers.linux.list import list_for_each_entry

    return list_for_each_entry("struct net", prog["net_namespace_list"].address_of_(), "list")
