"""nf_tables as the kernel keeps it: tables, chains, rules, handles, base-chain hooks.

``ns.nft`` holds one :class:`NftState` per namespace. Both ``nft``
(:mod:`nfteach.sim.tools.nft`) and ``iptables-nft`` write into it. Handles are the kernel's:
a table handle comes from a per-namespace counter that never goes back
(``++nft_net->table_handle``); chains and rules share the table's counter
(``nf_tables_alloc_handle(table)``). Measured on this machine: table 1, chain 1, rule 2 for
the article's three commands.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from . import nft_exprs
from .netfilter import NF_ACCEPT, NF_DROP, HookOps
from .netns import ctinfo_state
from .skb import IP_CT_UNTRACKED
from .xtables import nat_register, net_match

FAMILY_PF = {"ip": ("ipv4",), "ip6": ("ipv6",), "inet": ("ipv4", "ipv6")}
HOOKFN_ROLE = {"ip": "nft4", "ip6": "nft6", "inet": "nft_inet"}
ROUTE_ROLE = {"ip": "route4", "ip6": "route6", "inet": "route_inet"}  # nf_route_table_hook4 ...
CT_USER_PF = {"ip": "ipv4", "ip6": "ipv6", "inet": "inet"}
# NFT_CT_STATE bits: nft prints the states of a rule in this order
CT_STATE_BITS = ("invalid", "established", "related", "new", "untracked")


class NftError(Exception):
    """An nft error: message, and (start, end) of the part of the command to underline."""

    def __init__(self, msg: str, span: Optional[Tuple[int, int]] = None):
        super().__init__(msg)
        self.msg, self.span = msg, span


@dataclass
class Expr:
    """One match or statement of a rule."""

    kind: str  # l4proto port ip ct_state counter notrack verdict xt
    a: object = None
    b: object = None
    c: object = None
    is_set: bool = False  # written as an anonymous set: `{ 22, 80 }`
    pkts: int = 0
    bytes: int = 0


@dataclass(eq=False)
class NftRule:
    handle: int
    exprs: List[Expr]
    xt: object = None  # an XtRule when iptables-nft wrote this rule
    holds: List[Tuple[str, str]] = field(default_factory=list)  # ("ct", pf) / ("module", name) to release
    #: the rule's expressions as one function (``_compile_rule``), made on first evaluation
    fast: Optional[Callable] = field(default=None, repr=False)

    @property
    def ct_users(self) -> int:
        if self.xt is not None:
            return 1 if self.xt.ct_user else 0
        return sum(1 for e in self.exprs if e.kind == "ct_state")


@dataclass(eq=False)
class NftChain:
    name: str
    handle: int
    table: NftTable
    type: str = ""  # "" = regular chain
    hooknum: int = -1
    priority: int = 0
    policy: str = "accept"
    rules: List[NftRule] = field(default_factory=list)
    ops: list = field(default_factory=list)
    batch: int = 0  # the batch that created it (NftState.batch)

    @property
    def base(self) -> bool:
        return bool(self.type)


@dataclass(eq=False)
class NftTable:
    family: str
    name: str
    handle: int
    hgen: int = 0
    chains: Dict[str, NftChain] = field(default_factory=dict)
    managed_by: str = ""  # "iptables-nft" for tables iptables-nft created
    batch: int = 0  # the batch that created it (NftState.batch)

    def alloc_handle(self) -> int:
        self.hgen += 1
        return self.hgen


class NftState:
    """``struct nftables_pernet``: the tables of one namespace, in creation order."""

    def __init__(self, ns):
        self.ns = ns
        self.tables: Dict[Tuple[str, str], NftTable] = {}
        self.table_handle = 0
        self.batch = 0  # counts the batches (commands) that changed something

    # -- tables ---------------------------------------------------------------------
    def add_table(self, family: str, name: str, managed_by: str = "") -> NftTable:
        t = self.tables.get((family, name))
        if t is None:
            # the tool's NETLINK_NETFILTER socket autoloads nfnetlink first, the batch then
            # nf_tables ("nfnetlink-subsys-10"): lsmod lists libcrc32c above nfnetlink (vm 5.10)
            kcall(self.ns, "request_module", "nfnetlink")
            kcall(self.ns, "request_module", "nf_tables")
            self.table_handle += 1
            t = NftTable(family, name, self.table_handle, managed_by=managed_by, batch=self.batch)
            self.tables[(family, name)] = t
        return t

    def delete_table(self, t: NftTable) -> None:
        for c in list(t.chains.values()):
            self._release_chain(c)
        del self.tables[(t.family, t.name)]

    def flush_table(self, t: NftTable) -> None:
        for c in t.chains.values():
            self.flush_chain(c)

    def flush_ruleset(self) -> None:
        for t in list(self.tables.values()):
            self.delete_table(t)

    # -- chains ---------------------------------------------------------------------
    def add_chain(self, t: NftTable, name: str, ctype: str = "", hooknum: int = -1, priority: int = 0,
                  policy: str = "accept") -> NftChain:
        c = NftChain(name, t.alloc_handle(), t, ctype, hooknum, priority, policy, batch=self.batch)
        if c.base:
            self._register(c)
        t.chains[name] = c
        return c

    def delete_chain(self, c: NftChain) -> None:
        self._release_chain(c)
        del c.table.chains[c.name]

    def _release_chain(self, c: NftChain) -> None:
        self.flush_chain(c)
        for unreg in c.ops:
            unreg()
        c.ops = []

    def _register(self, c: NftChain) -> None:
        prof = self.ns.kernel.profile
        fam = c.table.family
        for pf in FAMILY_PF[fam]:
            fn = make_hook(self, c)
            owner = f"nft {fam} {c.table.name} {c.name}"
            if c.type == "nat":
                # the nat chain type is nft_chain_nat's: looked up with autoload (one aborted
                # attempt of the batch while it is not loaded), held by each nat base chain
                # (once per chain, not per family of an inet chain)
                if pf == FAMILY_PF[fam][0]:
                    if nft_exprs.missing_module(self.ns.kernel, "nft_chain_nat") and c.table.batch == self.batch:
                        self.table_handle += 1  # the aborted attempt created this batch's table too
                        c.table.handle = self.table_handle
                    kcall(self.ns, "request_module", "nft_chain_nat")
                    kcall(self.ns, "module_get", "nft_chain_nat", owner)
                    c.ops.append(lambda o=owner: kcall(self.ns, "module_put", "nft_chain_nat", o))
                c.ops.append(nat_register(self.ns, pf, c.hooknum, c.priority, fn, owner))
            else:
                role = ROUTE_ROLE[fam] if c.type == "route" else HOOKFN_ROLE[fam]
                ops = HookOps(pf, c.hooknum, c.priority, prof.hookfn[role], owner, fn=fn)
                self.ns.nf.register(ops)
                c.ops.append(lambda o=ops: self.ns.nf.unregister(o))

    # -- rules ----------------------------------------------------------------------
    def add_rule(self, c: NftChain, exprs: List[Expr], index: Optional[int] = None, xt=None) -> NftRule:
        kernel = self.ns.kernel
        types = nft_exprs.xt_types(xt) if xt is not None else nft_exprs.nft_types(exprs)
        sets = sum(1 for e in exprs if e.is_set)
        # a missing expression module is loaded from the abort path: each aborted attempt
        # allocated the handles the batch allocates up to this rule (nft_exprs)
        for mod in nft_exprs.missing(kernel, types):
            for _ in range(nft_exprs.AUTOLOAD_ABORTS):
                self._replay(c, sets)
            kcall(self.ns, "request_module", mod)
        for _ in range(sets):  # an anonymous set is a table object too: it takes a handle first
            c.table.alloc_handle()
        r = NftRule(c.table.alloc_handle(), exprs, xt)
        holder = f"nft {c.table.family} {c.table.name} {c.name} handle {r.handle}"
        pf = CT_USER_PF[c.table.family]
        for _ in range(r.ct_users):
            self.ns.ct_get(pf)
            r.holds.append(("ct", pf))
        mods = [nft_exprs.owner(kernel, t) for t in types] + (nft_exprs.xt_held(xt) if xt is not None else [])
        for mod in mods:
            kcall(self.ns, "request_module", mod)
            kcall(self.ns, "module_get", mod, holder)
            r.holds.append(("module", mod))
        if index is None:
            c.rules.append(r)
        else:
            c.rules.insert(index, r)
        return r

    def _replay(self, c: NftChain, sets: int) -> None:
        """One aborted attempt of the batch that adds a rule to ``c``: a table created by this
        batch is created again (a new table handle, its own handles start again); otherwise
        the chain (if this batch created it), the sets and the rule took handles for good."""
        t = c.table
        if t.batch == self.batch:
            self.table_handle += 1
            t.handle = self.table_handle
            return
        if c.batch == self.batch:
            t.alloc_handle()
        for _ in range(sets + 1):
            t.alloc_handle()

    def begin(self) -> None:
        """A new batch (one command of ``nft`` or ``iptables-nft``)."""
        self.batch += 1

    def delete_rule(self, c: NftChain, r: NftRule) -> None:
        c.rules.remove(r)
        self._release_rule(c, r)

    def _release_rule(self, c: NftChain, r: NftRule) -> None:
        holder = f"nft {c.table.family} {c.table.name} {c.name} handle {r.handle}"
        for kind, arg in r.holds:
            if kind == "ct":
                self.ns.ct_put(arg)
            else:
                kcall(self.ns, "module_put", arg, holder)
        r.holds = []

    def flush_chain(self, c: NftChain) -> None:
        rules, c.rules = c.rules, []
        for r in rules:
            self._release_rule(c, r)

    def jumps_to(self, c: NftChain) -> bool:
        return any(e.kind == "verdict" and e.a in ("jump", "goto") and e.b == c.name
                   for ch in c.table.chains.values() for r in ch.rules for e in r.exprs)


def kcall(ns, name: str, *args):
    """Call ``ns.kernel.<name>(*args)`` if the modelled kernel has it (modules are optional)."""
    fn = getattr(ns.kernel, name, None)
    return fn(*args) if fn is not None else None


def get_state(ns) -> NftState:
    if ns.nft is None:
        ns.nft = NftState(ns)
    return ns.nft


# -- the packet path: nft_do_chain ----------------------------------------------------
def _expr_match(e: Expr, skb) -> bool:
    kind = e.kind
    if kind == "port":
        if getattr(skb, "protocol", 6) != e.a:
            return False
        v = skb.dport if e.b == "dport" else skb.sport
        for lo, hi in e.c:
            if lo <= v <= hi:
                return True
        return False
    if kind == "l4proto":
        return getattr(skb, "protocol", 6) == e.a
    if kind == "ip":
        return net_match(e.b, skb.saddr if e.a == "saddr" else skb.daddr)
    if kind == "ct_state":
        return ctinfo_state(skb) in e.a
    return True


def do_chain(state: NftState, chain: NftChain, skb, hstate) -> int:
    """``nft_do_chain``: the verdict of a base chain for one packet."""
    stack: Optional[List[Tuple[NftChain, int]]] = None  # the jump stack, made at the first jump
    c, i = chain, 0
    while True:
        rules = c.rules
        n = len(rules)
        verdict = None
        while i < n:
            r = rules[i]
            i += 1
            if r.xt is not None:
                verdict = _eval_rule(r, skb, hstate)
            else:
                fast = r.fast
                if fast is None:
                    fast = r.fast = _compile_rule(r)
                verdict = fast(skb)
            if verdict is not None:
                break
        if verdict is None:  # the end of chain c
            if not stack:
                return NF_DROP if c.policy == "drop" else NF_ACCEPT
            c, i = stack.pop()
            continue
        kind, target = verdict
        if kind == "accept":
            return NF_ACCEPT
        if kind == "drop":
            return NF_DROP
        if kind == "return":
            if not stack:
                return NF_DROP if c.policy == "drop" else NF_ACCEPT
            c, i = stack.pop()
        elif kind in ("jump", "goto"):
            nxt = c.table.chains.get(target)
            if nxt is None:
                continue
            if kind == "jump":
                if stack is None:
                    stack = []
                stack.append((c, i))
            c, i = nxt, 0


def _eval_rule(r: NftRule, skb, hstate):
    if r.xt is not None:
        xt = r.xt
        if not xt.matches_skb(skb, hstate):
            return None
        xt.pkts += 1
        xt.bytes += skb.len
        if xt.target in ("NOTRACK", "CT"):
            skb.nfct, skb.ctinfo = None, IP_CT_UNTRACKED
            return None
        if xt.target in ("ACCEPT", "DROP", "RETURN"):
            return (xt.target.lower(), None)
        return ("jump", xt.target) if xt.target else None
    for e in r.exprs:
        kind = e.kind
        if kind == "port":  # the usual first match, here rather than in _expr_match
            if getattr(skb, "protocol", 6) != e.a:
                return None
            v = skb.dport if e.b == "dport" else skb.sport
            for lo, hi in e.c:
                if lo <= v <= hi:
                    break
            else:
                return None
        elif kind == "counter":
            e.pkts += 1
            e.bytes += skb.len
        elif kind == "verdict":
            return (e.a, e.b)
        elif kind == "notrack":
            skb.nfct, skb.ctinfo = None, IP_CT_UNTRACKED
        elif not _expr_match(e, skb):
            return None
    return None


def _compile_rule(r: NftRule) -> Callable:
    """``r``'s expressions (not an iptables-nft rule) as one function ``rule(skb)`` with the
    same result as ``_eval_rule``: the same tests, counters and verdict in the same order;
    only the dispatch on each expression's kind is done once, here (a rule's expressions do
    not change once it is added)."""
    env = {"getattr": getattr, "_expr_match": _expr_match, "IP_CT_UNTRACKED": IP_CT_UNTRACKED}
    lines = ["def rule(skb):"]
    for i, e in enumerate(r.exprs):
        name = f"e{i}"
        env[name] = e
        if e.kind == "port":
            field_ = "dport" if e.b == "dport" else "sport"
            lines += [f"    if getattr(skb, 'protocol', 6) != {name}.a:", "        return None",
                      f"    v = skb.{field_}"]
            if isinstance(e.c, tuple) and all(type(lo) is int and type(hi) is int for lo, hi in e.c):
                # the ranges (a tuple of int pairs: it does not change) as constants, in order
                test = " or ".join(f"v == {lo}" if lo == hi else f"{lo} <= v <= {hi}" for lo, hi in e.c) or "False"
                lines += [f"    if not ({test}):", "        return None"]
            else:
                lines += [f"    for lo, hi in {name}.c:", "        if lo <= v <= hi:",
                          "            break", "    else:", "        return None"]
        elif e.kind == "counter":
            lines += [f"    {name}.pkts += 1", f"    {name}.bytes += skb.len"]
        elif e.kind == "verdict":
            lines += [f"    return ({name}.a, {name}.b)"]
        elif e.kind == "notrack":
            lines += ["    skb.nfct, skb.ctinfo = None, IP_CT_UNTRACKED"]
        else:
            lines += [f"    if not _expr_match({name}, skb):", "        return None"]
    lines.append("    return None")
    exec(compile("\n".join(lines), f"<nft rule {r.handle}>", "exec"), env)
    return env["rule"]


def make_hook(state: NftState, chain: NftChain) -> Callable:
    """The base chain's hook function: ``nft_do_chain(skb, hstate)`` for this chain (a
    ``partial``, so calling it costs no Python frame of its own)."""
    return functools.partial(do_chain, state, chain)
