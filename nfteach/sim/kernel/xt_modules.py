"""What an ``iptables-legacy`` rule keeps loaded: its extension modules and its table.

Measured on the 5.10 guest (``nfteach fidelity``): after
``iptables-legacy -t raw -A PREROUTING -p tcp --dport 2571 -j CT --notrack`` lsmod shows
``xt_tcpudp 1``, ``xt_CT 1`` and ``iptable_raw 1``:

* each match/target extension of a rule is a module (``xt_tcpudp`` for ``--sport``/
  ``--dport``, ``xt_CT`` for ``CT``/``NOTRACK``); the kernel loads it when the rule is
  checked and holds one reference per rule (``xt_check_match``/``xt_check_target`` ->
  ``try_module_get``), dropped when the rule goes;
* a table module is held while its table has more entries than it started with
  (``xt_replace_table``/``do_replace``: ``try_module_get(t->me)`` when user entries
  appear, ``module_put`` when they are gone), so ``rmmod iptable_raw`` is "in use".
The conntrack matches (``xt_conntrack``/``xt_state``) are held by ``iptables._ct_hold``; the
extensions are loaded while iptables parses the rule (:func:`revision_queries`).
"""
from __future__ import annotations

from typing import List

from . import nft_exprs
from .nftables import kcall


def rule_modules(rule) -> List[str]:
    mods = []
    if any(m.name in ("tcp", "udp") and (m.sport or m.dport) for m in rule.matches):
        mods.append("xt_tcpudp")
    if rule.target in ("CT", "NOTRACK"):
        mods.append("xt_CT")
    return mods


def hold(ns, rule, get: bool) -> None:
    """References of one rule's extensions: taken when it is added, dropped when it goes."""
    for mod in rule_modules(rule):
        if get:
            kcall(ns, "request_module", mod)
            kcall(ns, "module_get", mod, "xt rule")
        else:
            kcall(ns, "module_put", mod, "xt rule")


def sync_table_ref(ns, table) -> None:
    """The table module's reference while the table holds user entries (rules, user chains)."""
    user = any(ch.rules for ch in table.chains.values()) or any(not ch.builtin for ch in table.chains.values())
    held = getattr(table, "user_ref", False)
    if user and not held:
        kcall(ns, "module_get", f"iptable_{table.name}", "xt table")
    elif held and not user:
        kcall(ns, "module_put", f"iptable_{table.name}", "xt table")
    table.user_ref = user


def revision_queries(ns, rule, variant: str) -> None:
    """While iptables parses a rule it asks the kernel for each extension's revision, which
    loads the xt module (``try_then_request_module``), in command-line order; the modules stay
    loaded when the command then fails (vm 5.10: the nat table's DROP refusal).

    - nft: its NETLINK_NETFILTER socket autoloads nfnetlink, the query goes through
      nft_compat (nfnetlink-subsys-11, which brings nf_tables as a dependency); xt_tcpudp is
      loaded (use count 0) although the rule matches the ports natively;
    - legacy: the query is a getsockopt of ip_tables, which iptables modprobes first."""
    ext = nft_exprs.xt_modules(rule)
    if variant == "legacy":
        if ext:
            kcall(ns, "request_module", "ip_tables")
    else:
        kcall(ns, "request_module", "nfnetlink")
        if ext:
            kcall(ns, "request_module", "nft_compat")
    for mod in ext:
        kcall(ns, "request_module", mod)
