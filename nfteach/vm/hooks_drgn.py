"""Walk a kernel's Netfilter hook tables with drgn: the project's ``list-nf-hooks``.

Works on any :class:`drgn.Program`; the ``vm`` backend opens one on a QEMU guest over
QMP (``Program.set_qemu_qmp``) with the guest kernel's ``vmlinux`` and the debug
``.ko`` files of its loaded netfilter modules.

The format follows the article's tool (cloudflare-blog ``tools/list-nf-hooks``): for
each family and hook, a header line, one line per priority with the callbacks in run
order, then a blank line; a hook with no entries prints its header and the blank line.
Unlike that tool, only the five hooks that ``hooks_ipv4[]``/``hooks_ipv6[]`` have are
walked: ``enum nf_inet_hooks`` also lists ``NF_INET_INGRESS`` (= ``NF_INET_NUMHOOKS``),
and reading ``hooks_ipv4[NF_INET_INGRESS]`` goes past the end of the array.

>>> print(format_hooks(nf_hooks(prog)), end="")     # doctest: +SKIP
🪝 ipv4 PRE_ROUTING
       -400 → ipv4_conntrack_defrag
       -200 → ipv4_conntrack_in
...
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Tuple

HOOKS = ("PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING")
FAMILIES = (("ipv4", "hooks_ipv4"), ("ipv6", "hooks_ipv6"))

#: family -> hook -> [(priority, callback name)] in run order
HookTable = Dict[str, Dict[str, List[Tuple[int, str]]]]


def nf_hook_entries(prog, entries) -> List[Tuple[int, str]]:
    """(priority, function name) of each entry of a ``struct nf_hook_entries *``, in run order.

    The ``struct nf_hook_ops *`` array sits right after ``hooks[num_hook_entries]``
    (``nf_hook_entries_get_hook_ops()`` in include/linux/netfilter.h).
    """
    from drgn import cast

    if not entries:
        return []
    num = entries.num_hook_entries.value_()
    ops = cast("struct nf_hook_ops **", entries.hooks[num].address_of_())
    out = []
    for i in range(num):
        op = ops[i]
        addr = op.hook.value_()
        try:
            name = prog.symbol(addr).name
        except LookupError:
            name = hex(addr)
        out.append((op.priority.value_(), name))
    return out


def nf_hooks(prog, net=None) -> HookTable:
    """The IPv4 and IPv6 hook tables of ``net`` (default: ``init_net``)."""
    if net is None:
        net = prog["init_net"]
    table: HookTable = {}
    for family, member in FAMILIES:
        arr = getattr(net.nf, member)
        table[family] = {name: nf_hook_entries(prog, arr[i]) for i, name in enumerate(HOOKS)}
    return table


def format_hooks(table: HookTable) -> str:
    """The article tool's text: ``       -400 → ipv4_conntrack_defrag`` (equal priorities joined)."""
    from ..render.nfhooks import format_nf_hooks, group_by_priority

    return format_nf_hooks({(family, hook): group_by_priority(table[family].get(hook, []))
                            for family in table for hook in HOOKS}, hooks=HOOKS, families=sorted(table))


def qemu_program(qmp: Path, vmlinux: Path, modules: Iterable[Path] = ()):
    """A drgn Program on a QEMU guest over QMP, with the given debug files loaded."""
    import logging

    import drgn

    logging.getLogger("drgn").setLevel(logging.WARNING)  # not one line per debug file
    prog = drgn.Program()
    prog.set_qemu_qmp(str(qmp))
    paths = [str(vmlinux), *map(str, modules)]
    try:
        prog.load_debug_info(paths)
    except drgn.MissingDebugInfoError:
        pass  # modules without a debug file: their symbols show as addresses
    return prog
