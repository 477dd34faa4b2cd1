"""``iptables`` (legacy and nft variants) on the model.

- legacy: per-namespace x_tables tables in ``ns.xt`` (:mod:`nfteach.sim.kernel.ip_tables`);
  a table is instantiated in a namespace on first use (``request_module("iptable_filter")``,
  hooks at the table's priority with the profile's hook function); flushing keeps the
  table and its hooks.
- nft: rules go into ``ns.nft`` (table ``ip filter``, base chains created on demand),
  the same state the ``nft`` command lists.

Messages are iptables 1.8.x's (checked against the real 1.8.9 on this machine).
"""
from __future__ import annotations

from typing import List, Optional

from ...model.backend import Output
from ..kernel import xt_modules
from ..kernel.ip_tables import HOOKNUM, NAT_PRIO, TABLES, XtChain, XtTable
from ..kernel.nftables import NftChain, get_state, kcall
from ..kernel.xtables import XtError, XtRule, list_header, parse_rule_spec


def _ver(ns, variant: str) -> str:
    return f"iptables v{ns.kernel.profile.tools['iptables']} ({'legacy' if variant == 'legacy' else 'nf_tables'})"


def _usage(ns, variant: str, msg: str, status: int = 2) -> Output:
    return Output.of(stderr=f"{_ver(ns, variant)}: {msg}\nTry `iptables -h' or 'iptables --help' for more "
                     "information.\n", status=status)


def _fail(msg: str) -> Output:
    return Output.of(stderr=f"iptables: {msg}\n", status=1)


class _Cmd:
    table = "filter"
    cmd = ""
    chain: Optional[str] = None
    num: Optional[int] = None
    arg: Optional[str] = None
    verbose = numeric = exact = linenum = False


COMMANDS = {"-A": "append", "--append": "append", "-I": "insert", "--insert": "insert", "-D": "delete",
            "--delete": "delete", "-F": "flush", "--flush": "flush", "-L": "list", "--list": "list",
            "-S": "save", "--list-rules": "save", "-P": "policy", "--policy": "policy", "-N": "new",
            "--new-chain": "new", "-X": "delete-chain", "--delete-chain": "delete-chain", "-Z": "zero",
            "--zero": "zero"}
NEEDS_CHAIN = {"append", "insert", "delete", "policy", "new"}


def _parse(argv: List[str]):
    c, spec, i = _Cmd(), [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and not a.startswith("--") and len(a) > 2 and a[1] in "LnvxSFZ" \
                and all(ch in "LnvxSFZ" for ch in a[1:]):
            argv[i:i + 1] = ["-" + ch for ch in a[1:]]  # -nvL
            a = argv[i]
        if a in ("-t", "--table"):
            if i + 1 >= len(argv):
                raise XtError('option "-t" requires an argument')
            c.table = argv[i + 1]
            i += 2
        elif a in COMMANDS:
            if c.cmd:
                raise XtError("Cannot use two commands at once")
            c.cmd = COMMANDS[a]
            i += 1
            if i < len(argv) and not argv[i].startswith("-"):
                c.chain = argv[i]
                i += 1
            elif c.cmd in NEEDS_CHAIN:
                raise XtError(f'option "{a}" requires an argument')
            if c.cmd in ("insert", "delete") and i < len(argv) and not argv[i].startswith("-"):
                c.arg = argv[i]
                i += 1
            elif c.cmd == "policy":
                if i >= len(argv):
                    raise XtError('option "-P" requires an argument')
                c.arg = argv[i]
                i += 1
        elif a in ("-n", "--numeric"):
            c.numeric, i = True, i + 1
        elif a in ("-v", "--verbose"):
            c.verbose, i = True, i + 1
        elif a in ("-x", "--exact"):
            c.exact, i = True, i + 1
        elif a == "--line-numbers":
            c.linenum, i = True, i + 1
        else:
            spec.append(a)
            i += 1
    return c, spec


def main(kernel, ns, argv: List[str]) -> Output:
    """``iptables``, ``iptables-legacy``, ``iptables-nft``: the plain name is the profile's
    default variant (``update-alternatives`` on the modelled distribution)."""
    prog = argv[0]
    if prog.endswith("-legacy"):
        variant = "legacy"
    elif prog.endswith("-nft"):
        variant = "nft"
    else:
        variant = kernel.profile.tools.get("iptables_default", "nft")
    return iptables_main(ns, argv, variant)


def iptables_main(ns, argv: List[str], variant: str) -> Output:
    """``iptables`` / ``iptables-legacy`` / ``iptables-nft``: the article's subset."""
    args = list(argv[1:])
    if argv[0].startswith("ip6tables"):
        return Output.of(stderr="nfteach: ip6tables is not modelled; supported: iptables, iptables-legacy, "
                         "iptables-nft\n", status=2)
    if any(a in ("-V", "--version") for a in args):
        return Output.of(stdout=_ver(ns, variant) + "\n")
    try:
        c, spec = _parse(args)
        if not c.cmd:
            if spec and spec[0].startswith("-") and spec[0] not in ("-p", "-s", "-d", "-j", "-m", "-i", "-o"):
                raise XtError(f'unknown option "{spec[0]}"')
            raise XtError("no command specified")
        if c.table not in TABLES:
            if variant == "legacy":
                return Output.of(stderr=f"{_ver(ns, variant)}: can't initialize iptables table `{c.table}': "
                                 "Table does not exist (do you need to insmod?)\nPerhaps iptables or your kernel "
                                 "needs to be upgraded.\n", status=3)
            return Output.of(stderr=f"{_ver(ns, variant)}: table '{c.table}' does not exist\nPerhaps iptables or "
                             "your kernel needs to be upgraded.\n", status=3)
        rule = None
        if c.cmd in ("append", "insert") or (c.cmd == "delete" and c.arg is None):
            rule = parse_rule_spec(spec, c.table, ns.kernel.profile.tools["iptables"])
        elif spec:
            raise XtError(f'unknown option "{spec[0]}"' if spec[0].startswith("-") else f"Bad argument `{spec[0]}'")
        if c.cmd == "insert" and c.arg is not None or c.cmd == "delete" and c.arg is not None:
            if not c.arg.isdigit() or int(c.arg) < 1:
                raise XtError(f"Invalid rule number `{c.arg}'")
            c.num = int(c.arg)
        if rule is not None:
            xt_modules.revision_queries(ns, rule, variant)
        if rule is not None and c.table == "nat" and rule.target == "DROP":
            raise XtError('\nThe "nat" table is not intended for filtering, the use of DROP is therefore inhibited.\n\n')
        if rule is not None and rule.target == "CT" and not rule.notrack:
            return Output.of(stderr="nfteach: iptables -j CT is modelled only with --notrack\n", status=2)
    except XtError as e:
        if e.bare:
            return Output.of(stderr=e.msg + "\n", status=e.status)
        if e.msg.startswith("Bad argument"):
            # the check for words left over after getopt prints no "iptables vX (...): "
            # (iptables 1.8.9, both variants: `iptables -L -n FORWARD`, live 6.18)
            return Output.of(stderr=f"{e.msg}\nTry `iptables -h' or 'iptables --help' for more information.\n",
                             status=e.status)
        return _usage(ns, variant, e.msg, e.status)
    return (_run_legacy if variant == "legacy" else _run_nft)(ns, variant, c, rule)


_NOCHAIN = "No chain/target/match by that name."
_LEGACY_WARNING = "# Warning: iptables-legacy tables present, use iptables-legacy to see them\n"


def _ct_hold(ns, rule: XtRule, holder: str, get: bool) -> None:
    if not rule.ct_user:
        return
    mod = "xt_conntrack" if any(m.name == "conntrack" for m in rule.matches) else "xt_state"
    if get:
        kcall(ns, "request_module", mod)
        ns.ct_get("ipv4")
        kcall(ns, "module_get", mod, holder)
    else:
        ns.ct_put("ipv4")
        kcall(ns, "module_put", mod, holder)


def _listing(chains, c: _Cmd, version: str) -> str:
    """chains: (name, policy or None, pkts, bytes, refs, rules)."""
    blocks = []
    for name, policy, pk, by, refs, rules in chains:
        out = list_header(name, policy, pk, by, refs, c.verbose, c.numeric, c.exact, c.linenum)
        for n, r in enumerate(rules, 1):
            out += r.list_row(n if c.linenum else None, c.verbose, c.numeric, c.exact, version)
        blocks.append(out)
    return "\n".join(blocks)


def _saving(chains, one: bool) -> str:
    out = []
    for name, policy, _pk, _by, _refs, _rules in chains:
        out.append(f"-P {name} {policy}\n" if policy else f"-N {name}\n")
    for name, _p, _pk, _by, _refs, rules in chains:
        out += [r.save(name) + "\n" for r in rules]
    return "".join(out)


def _check_target(rule: XtRule, table: str, names) -> Optional[str]:
    """None if the kernel accepts the rule, else 'einval' or 'nochain'."""
    if rule.einval or (rule.target in ("NOTRACK", "CT") and table != "raw"):
        return "einval"
    if rule.target and rule.target not in ("ACCEPT", "DROP", "RETURN", "NOTRACK", "CT") and rule.target not in names:
        return "nochain"
    return None


# -- iptables-legacy ------------------------------------------------------------------
def _run_legacy(ns, variant: str, c: _Cmd, rule: Optional[XtRule]) -> Output:
    t = ns.xt.get(c.table)
    if t is None:
        # the table module loads first: on 5.10 iptable_filter's load itself instantiates the
        # filter table in init_net (Kernel._module_loaded)
        kcall(ns, "request_module", "ip_tables")
        kcall(ns, "request_module", f"iptable_{c.table}")
        t = ns.xt.get(c.table)
    if t is None:
        t = ns.xt[c.table] = XtTable(ns, c.table)
    version = ns.kernel.profile.tools["iptables"]
    if c.cmd == "policy" and c.chain not in TABLES[c.table][0]:
        return _fail("Bad built-in chain name.")
    if c.chain is not None and c.chain not in t.chains and c.cmd != "new":
        return _fail(_NOCHAIN)
    ch = t.chains.get(c.chain) if c.chain else None
    holder = f"iptables {c.table} {c.chain}"
    if c.cmd in ("append", "insert", "delete", "flush", "policy", "new", "delete-chain"):
        # libiptc replaces the whole table: rule counters are carried over, the built-in
        # chains' policy counters start again from zero (measured on 6.18 with 1.8.9,
        # tests/golden/live-6.18/notrack.txt)
        for chain in t.chains.values():
            if chain.builtin:
                chain.pkts = chain.bytes = 0
    if c.cmd in ("append", "insert"):
        bad = _check_target(rule, c.table, t.chains)
        if bad == "einval":
            return _fail("Invalid argument. Run `dmesg' for more information.")
        if bad == "nochain":  # not a chain, so iptables looks for a target extension
            return _usage(ns, variant, f"Couldn't load target `{rule.target}':No such file or directory\n")
        pos = len(ch.rules) if c.cmd == "append" else (c.num or 1) - 1
        if pos > len(ch.rules):
            return _fail("Index of insertion too big.")
        _ct_hold(ns, rule, holder, True)
        xt_modules.hold(ns, rule, True)
        ch.rules.insert(pos, rule)
    elif c.cmd == "delete":
        if c.num is not None:
            if c.num > len(ch.rules):
                return _fail("Index of deletion too big.")
            victim = ch.rules[c.num - 1]
        else:
            victim = next((r for r in ch.rules if r.key() == rule.key()), None)
            if victim is None:
                return _fail("Bad rule (does a matching rule exist in that chain?).")
        ch.rules.remove(victim)
        _ct_hold(ns, victim, holder, False)
        xt_modules.hold(ns, victim, False)
    elif c.cmd == "flush":
        for x in [ch] if ch else t.chains.values():
            rules, x.rules = x.rules, []
            for r in rules:
                _ct_hold(ns, r, f"iptables {c.table} {x.name}", False)
                xt_modules.hold(ns, r, False)
    elif c.cmd == "zero":
        for x in [ch] if ch else t.chains.values():
            x.pkts = x.bytes = 0
            for r in x.rules:
                r.pkts = r.bytes = 0
    elif c.cmd == "policy":
        if not ch.builtin:
            return _fail("Bad built-in chain name.")
        if c.arg not in ("ACCEPT", "DROP"):
            return _fail("Bad policy name. Run `dmesg' for more information.")
        ch.policy = c.arg
    elif c.cmd == "new":
        if c.chain in t.chains:
            return _fail("Chain already exists.")
        t.chains[c.chain] = XtChain(c.chain, False)
    elif c.cmd == "delete-chain":
        for x in [ch] if ch else [x for x in t.chains.values() if not x.builtin]:
            if x.builtin:
                return _fail("Invalid argument. Run `dmesg' for more information.")
            if x.rules or any(r.target == x.name for y in t.chains.values() for r in y.rules):
                return _fail("Directory not empty." if x.rules else "Too many links.")
            del t.chains[x.name]
    else:
        chains = []
        order = [x for x in t.chains.values() if x.builtin] + sorted(
            (x for x in t.chains.values() if not x.builtin), key=lambda x: x.name)
        for x in order:
            if ch is None or x is ch:
                refs = sum(1 for y in t.chains.values() for r in y.rules if r.target == x.name)
                chains.append((x.name, x.policy, x.pkts, x.bytes, refs, x.rules))
        text = _listing(chains, c, version) if c.cmd == "list" else _saving(chains, ch is not None)
        return Output.of(stdout=text)
    xt_modules.sync_table_ref(ns, t)
    return Output.of()


# -- iptables-nft -----------------------------------------------------------------------
def _nft_chain(st, table: str, name: str, create: bool) -> Optional[NftChain]:
    t = st.tables.get(("ip", table))
    if t is None and not create:
        return None
    if t is None:
        t = st.add_table("ip", table, managed_by="iptables-nft")
    ch = t.chains.get(name)
    if ch is None and create and name in TABLES[table][0]:
        if table == "nat":
            ch = st.add_chain(t, name, "nat", HOOKNUM[name], NAT_PRIO[name])
        elif table == "mangle" and name == "OUTPUT":
            # iptables-nft's mangle OUTPUT is a route chain: a changed mark re-routes the packet
            # (nft_chain_builtin_add, xtables_ipv4[MANGLE]; `nft list` on vm 5.10: type route)
            ch = st.add_chain(t, name, "route", HOOKNUM[name], TABLES[table][1])
        else:
            ch = st.add_chain(t, name, "filter", HOOKNUM[name], TABLES[table][1])
    return ch


def _run_nft(ns, variant: str, c: _Cmd, rule: Optional[XtRule]) -> Output:
    st = get_state(ns)
    st.begin()
    # every command talks to nf_tables, a listing too (vm 5.10/6.1: `iptables-nft -L` leaves
    # nf_tables 0 in lsmod)
    kcall(ns, "request_module", "nfnetlink")
    kcall(ns, "request_module", "nf_tables")
    version = ns.kernel.profile.tools["iptables"]
    builtins = TABLES[c.table][0]
    t = st.tables.get(("ip", c.table))
    names = set(builtins) | set(t.chains if t else ())
    if c.cmd == "policy" and c.chain not in builtins:
        return _fail("Bad built-in chain name.")
    if c.chain is not None and c.chain not in names and c.cmd not in ("new", "list"):
        return _fail(_NOCHAIN)
    warn = _LEGACY_WARNING if ns.xt and c.cmd in ("list", "save") else ""
    if c.cmd in ("append", "insert"):
        if rule.target and rule.target not in ("ACCEPT", "DROP", "RETURN", "NOTRACK", "CT") \
                and rule.target not in names:
            return _usage(ns, variant, f"Chain '{rule.target}' does not exist")
        if _check_target(rule, c.table, names) == "einval":
            what = "RULE_APPEND" if c.cmd == "append" else "RULE_INSERT"
            return Output.of(stderr=f"{_ver(ns, variant)}:  {what} failed (Invalid argument): rule in chain "
                             f"{c.chain}\n", status=4)
        ch = _nft_chain(st, c.table, c.chain, False)
        n = len(ch.rules) if ch else 0
        pos = n if c.cmd == "append" else (c.num or 1) - 1
        if pos > n:
            return _fail("Index of insertion too big.")
        ch = _nft_chain(st, c.table, c.chain, True)
        st.add_rule(ch, [], pos, xt=rule)
        return Output.of()
    if c.cmd == "delete":
        ch = _nft_chain(st, c.table, c.chain, False)
        rules = ch.rules if ch else []
        if c.num is not None:
            if c.num > len(rules):
                return _fail("Index of deletion too big.")
            victim = rules[c.num - 1]
        else:
            victim = next((r for r in rules if r.xt is not None and r.xt.key() == rule.key()), None)
            if victim is None:
                return _fail("Bad rule (does a matching rule exist in that chain?).")
        st.delete_rule(ch, victim)
        return Output.of()
    if c.cmd in ("flush", "zero"):
        for ch in ([t.chains.get(c.chain)] if c.chain else list(t.chains.values())) if t else []:
            if ch is None:
                continue
            if c.cmd == "flush":
                st.flush_chain(ch)
            for r in ch.rules:
                if r.xt is not None:
                    r.xt.pkts = r.xt.bytes = 0
        return Output.of()
    if c.cmd == "policy":
        if c.chain not in builtins:
            return _fail("Bad built-in chain name.")
        if c.arg not in ("ACCEPT", "DROP"):
            return _fail("Bad policy name. Run `dmesg' for more information.")
        _nft_chain(st, c.table, c.chain, True).policy = c.arg.lower()
        return Output.of()
    if c.cmd == "new":
        if c.chain in names:
            return _fail("Chain already exists.")
        tt = st.add_table("ip", c.table, managed_by="iptables-nft")
        st.add_chain(tt, c.chain)
        return Output.of()
    if c.cmd == "delete-chain":
        if c.chain in builtins:
            return _fail("Invalid argument. Run `dmesg' for more information.")
        for ch in ([t.chains[c.chain]] if c.chain else [x for x in t.chains.values() if not x.base]) if t else []:
            if ch.base:
                return _fail("Invalid argument. Run `dmesg' for more information.")
            if ch.rules or st.jumps_to(ch):
                return _fail("Directory not empty." if ch.rules else "Too many links.")
            st.delete_chain(ch)
        return Output.of()
    # list / save: builtin chains exist for iptables-nft even before it creates them
    if c.chain is not None and c.chain not in names:
        return Output.of(stderr=warn + f"{_ver(ns, variant)}: chain `{c.chain}' in table `{c.table}' is "
                         "incompatible, use 'nft' tool.\n", status=1)
    chains = []
    user = sorted(x for x in (t.chains if t else {}) if x not in builtins)
    for name in list(builtins) + user:
        if c.chain is not None and name != c.chain:
            continue
        ch = t.chains.get(name) if t else None
        if ch is not None and any(r.xt is None for r in ch.rules):
            return Output.of(stderr=warn + f"{_ver(ns, variant)}: chain `{name}' in table `{c.table}' is "
                             "incompatible, use 'nft' tool.\n", status=1)
        rules = [r.xt for r in ch.rules] if ch else []
        policy = (ch.policy.upper() if ch else "ACCEPT") if name in builtins else None
        refs = sum(1 for x in (t.chains.values() if t else ()) for r in x.rules
                   if r.xt is not None and r.xt.target == name)
        chains.append((name, policy, 0, 0, refs, rules))
    text = _listing(chains, c, version) if c.cmd == "list" else _saving(chains, c.chain is not None)
    return Output((("err", warn),) * bool(warn) + ((("out", text),) if text else ()), 0)
