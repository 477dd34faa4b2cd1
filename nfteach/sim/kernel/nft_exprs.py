"""The kernel expressions of an nf_tables rule, the modules they hold and load.

``nft`` and ``iptables-nft`` send a rule as a list of expressions (``nft --debug=netlink``
shows them). For each one ``nf_tables_newrule`` looks the type up by name
(``nft_expr_type_get``) and takes a reference on the module that registered it
(``try_module_get(type->owner)``), dropped when the rule is destroyed
(``nf_tables_expr_destroy``). The types built into nf_tables.ko (``meta``, ``cmp``,
``payload``, ``immediate``, ``bitwise``, ``lookup``, ``range``: nf_tables_core.c; and
``counter`` on 6.1+) are owned by nf_tables itself, so lsmod's use count of nf_tables grows
by one per such expression. An ``iptables-nft`` rule's xt match/target is a compat
expression (nft_compat) that also holds the xt module (``xt_find_match``/``xt_find_target``).

A type that is not registered yet is loaded from the abort path
(``nft_request_module``): the batch fails with -EAGAIN, is aborted, the module is loaded,
the batch is replayed. ``nft_expr_type_get`` asks for ``nft-expr-<family>-<name>`` first
(no module has that alias here: one more abort), then ``nft-expr-<name>``: two aborted
attempts, each allocating the handles the batch allocates before that expression.
Measured on vm 5.10 (nft 1.0.6): ``nft add rule ip t c ct state new counter`` on a kernel
without nft_ct gets handle n+3; ``iptables-nft -A`` rules hold nft_counter (5.10) and one
nf_tables reference per built-in expression (tests/golden/*/fidelity-nft-modules.txt).
"""
from __future__ import annotations

from typing import List

#: expression type -> the module that registers it, where it can be one (a kernel whose
#: derived module list lacks the module has the type built into nf_tables)
TYPE_MODULE = {"counter": "nft_counter", "ct": "nft_ct", "notrack": "nft_ct",
               "match": "nft_compat", "target": "nft_compat"}
#: aborted attempts of a batch before a missing expression module is there (see above)
AUTOLOAD_ABORTS = 2


def _port(e, have_l4: set) -> List[str]:
    dep = [] if e.a in have_l4 else ["meta", "cmp"]  # the `meta l4proto` dependency
    have_l4.add(e.a)
    if e.is_set:
        return dep + ["payload", "lookup"]
    lo, hi = e.c[0]
    return dep + ["payload"] + (["cmp"] if lo == hi else ["cmp", "cmp"])  # a range: cmp gte, cmp lte


def _net(net) -> List[str]:
    """``ip saddr A/N``: a byte-aligned prefix is a shorter load, others need a mask."""
    plen = net[1] if net is not None else 32
    return ["payload", "cmp"] if plen % 8 == 0 else ["payload", "bitwise", "cmp"]


def nft_types(exprs) -> List[str]:
    """The kernel expressions of a rule ``nft`` adds, in order."""
    out: List[str] = []
    have_l4: set = set()
    for e in exprs:
        k = e.kind
        if k == "port":
            out += _port(e, have_l4)
        elif k == "l4proto":
            have_l4.add(e.a)
            out += ["meta", "cmp"]
        elif k == "ip":
            out += _net(e.b)
        elif k == "ct_state":
            out += ["ct", "bitwise", "cmp"]
        elif k in ("counter", "notrack"):
            out.append(k)
        elif k == "verdict":
            out.append("immediate")
    return out


def xt_types(xt) -> List[str]:
    """The kernel expressions of an ``iptables-nft`` (1.8.9) rule: native payload matches
    where it translates them, a compat match for the conntrack/state matches, a counter in
    every rule, then the verdict (``immediate``) or an xt target."""
    out: List[str] = []
    if xt.src is not None:
        out += _net(xt.src)
    if xt.dst is not None:
        out += _net(xt.dst)
    if xt.iif:
        out += ["meta", "cmp"]
    if xt.oif:
        out += ["meta", "cmp"]
    if xt.proto:
        out += ["meta", "cmp"]
    for m in xt.matches:
        if m.ct_user:
            out.append("match")
            continue
        for rng in (m.sport, m.dport):
            if rng is not None and rng != (0, 65535):
                out += ["payload", "cmp" if rng[0] == rng[1] else "range"]
    out.append("counter")
    if xt.target in ("NOTRACK", "CT"):
        out.append("target")
    elif xt.target:
        out.append("immediate")
    return out


def xt_modules(xt) -> List[str]:
    """The x_tables modules an ``iptables-nft`` rule names: loaded while iptables parses it
    (it asks the kernel for each extension's revision through nft_compat:
    ``try_then_request_module``), in the order of the command line."""
    mods = []
    for m in xt.matches:
        mods.append("xt_tcpudp" if m.name in ("tcp", "udp") else f"xt_{m.name}")
    if xt.target in ("NOTRACK", "CT"):
        mods.append("xt_CT")
    return mods


def xt_held(xt) -> List[str]:
    """The x_tables modules the rule's compat expressions hold (one reference each)."""
    held = [f"xt_{m.name}" for m in xt.matches if m.ct_user]
    if xt.target in ("NOTRACK", "CT"):
        held.append("xt_CT")
    return held


def owner(kernel, etype: str) -> str:
    """The module that registered expression type ``etype`` on this kernel."""
    mod = TYPE_MODULE.get(etype)
    modules = getattr(kernel, "modules", None)
    if mod is None or (modules is not None and not modules.known(mod)):
        return "nf_tables"
    return mod


def missing_module(kernel, mod: str) -> bool:
    """Must the kernel load ``mod`` (a module of this kernel, not loaded yet)?"""
    modules = getattr(kernel, "modules", None)
    return modules is not None and bool(getattr(kernel.profile, "modules", False)) and modules.known(mod) \
        and mod not in modules.loaded


def missing(kernel, types: List[str]) -> List[str]:
    """The expression modules the kernel must load for these types, in order (each costs
    the batch :data:`AUTOLOAD_ABORTS` aborted attempts)."""
    out: List[str] = []
    for t in types:
        mod = owner(kernel, t)
        if mod != "nf_tables" and mod not in out and missing_module(kernel, mod):
            out.append(mod)
    return out
