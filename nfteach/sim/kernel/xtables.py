"""iptables rules as data: parsing a rule spec, matching a packet, printing ``-L`` / ``-S``.

Shared by both iptables variants: ``iptables-legacy`` keeps :class:`XtTable` objects in
``ns.xt``; ``iptables-nft`` keeps the same :class:`XtRule` inside nft rules (``rule.xt``).
Formats follow iptables' ``print_firewall()`` / ``save_ipv4()`` (iptables/xshared.c,
iptables/iptables.c) and were compared with the real 1.8.9 on this machine.

>>> r = parse_rule_spec(["-p", "tcp", "--dport", "2570", "-j", "DROP"], "filter", "1.8.9")
>>> r.save("INPUT")
'-A INPUT -p tcp -m tcp --dport 2570 -j DROP'
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .netns import ctinfo_state

PROTOS = {"all": 0, "icmp": 1, "tcp": 6, "udp": 17}
PROTO_NAMES = {v: k for k, v in PROTOS.items()}
# iptables prints states in this order (libxt_conntrack.c print_state)
CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED")
# a few of /etc/services, for listings without -n
SERVICES = {22: "ssh", 25: "smtp", 53: "domain", 80: "http", 123: "ntp", 443: "https"}
BUILTIN_TARGETS = ("ACCEPT", "DROP", "RETURN")
#: real targets the model does not run: refused with one `nfteach:` line, never imitated
UNMODELLED_TARGETS = ("LOG", "REJECT", "NFLOG", "MASQUERADE", "SNAT", "DNAT", "REDIRECT", "MARK", "CONNMARK",
                      "TRACE", "NFQUEUE", "TCPMSS", "TEE", "AUDIT", "CLASSIFY", "DSCP", "TOS", "TTL", "SET",
                      "CHECKSUM", "SECMARK", "CONNSECMARK", "TPROXY", "SYNPROXY", "ULOG")


class XtError(Exception):
    """A usage error: ``iptables vX (variant): MSG`` + the 'Try' line, status 2."""

    def __init__(self, msg: str, status: int = 2, bare: bool = False, tryhelp: bool = True):
        super().__init__(msg)
        self.msg, self.status, self.bare, self.tryhelp = msg, status, bare, tryhelp


Net = Tuple[int, int]  # (address as int, prefix length)


def parse_net(text: str) -> Net:
    addr, _, mask = text.partition("/")
    try:
        if not addr or not all(p.isdigit() for p in addr.split(".")):
            raise ValueError
        a = int(ipaddress.IPv4Address(addr))
        plen = 32
        if mask:
            if mask.isdigit() and int(mask) <= 32:
                plen = int(mask)
            else:
                m = int(ipaddress.IPv4Address(mask))
                plen = bin(m).count("1")
                if m != (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF:
                    raise ValueError
    except ValueError:
        if mask and addr:
            try:
                ipaddress.IPv4Address(addr)
                raise XtError(f"invalid mask `{mask}' specified")
            except ValueError:
                pass
        raise XtError(f"host/network `{addr}' not found") from None
    netmask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0
    return a & netmask, plen


def net_str(n: Optional[Net], numeric: bool = True, save: bool = False) -> str:
    if n is None:
        return "0.0.0.0/0" if numeric else "anywhere"
    addr, plen = n
    s = str(ipaddress.IPv4Address(addr))
    if plen == 0 and not numeric:
        return "anywhere"
    return f"{s}/{plen}" if (plen != 32 or save) else s


def net_match(n: Optional[Net], ip: str) -> bool:
    if n is None:
        return True
    addr, plen = n
    try:
        v = int(ipaddress.IPv4Address(ip))
    except ValueError:
        return False
    mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0
    return v & mask == addr


def parse_port(text: str, opt: str) -> Tuple[int, int]:
    """``--dport 22`` or ``--dport 1:1024`` (``xtables_parse_port``)."""
    names = {v: k for k, v in SERVICES.items()}

    def one(s: str, dflt: int) -> int:
        if s == "":
            return dflt
        if s in names:
            return names[s]
        if s.isdigit() and s.isascii() and int(s) <= 65535:
            return int(s)
        raise XtError(f"invalid port/service `{s}' specified")

    if ":" in text:
        lo, _, hi = text.partition(":")
        a, b = one(lo, 0), one(hi, 65535)
        if a > b:
            a, b = b, a
        return a, b
    p = one(text, 0)
    return p, p


@dataclass
class XtMatch:
    name: str  # "tcp", "udp", "conntrack", "state"
    sport: Optional[Tuple[int, int]] = None
    dport: Optional[Tuple[int, int]] = None
    states: Tuple[str, ...] = ()

    def matches(self, skb) -> bool:
        if self.name in ("tcp", "udp"):
            for rng, val in ((self.sport, skb.sport), (self.dport, skb.dport)):
                if rng is not None and not rng[0] <= val <= rng[1]:
                    return False
            return True
        return ctinfo_state(skb).upper() in self.states

    def _ports(self, rng, short: str, numeric: bool) -> str:
        if rng is None or rng == (0, 65535):
            return ""
        def nm(p):
            return str(p) if numeric else SERVICES.get(p, str(p))
        if rng[0] == rng[1]:
            return f" {short}:{nm(rng[0])}"
        return f" {short}s:{nm(rng[0])}:{nm(rng[1])}"

    def print(self, numeric: bool) -> str:
        if self.name in ("tcp", "udp"):
            return f" {self.name}" + self._ports(self.sport, "spt", numeric) + self._ports(self.dport, "dpt", numeric)
        word = "ctstate" if self.name == "conntrack" else "state"
        return f" {word} {','.join(self.states)}"

    def save(self) -> str:
        if self.name in ("tcp", "udp"):
            out = f" -m {self.name}"
            for rng, opt in ((self.sport, "--sport"), (self.dport, "--dport")):
                if rng is not None:
                    out += f" {opt} {rng[0]}" if rng[0] == rng[1] else f" {opt} {rng[0]}:{rng[1]}"
            return out
        opt = "--ctstate" if self.name == "conntrack" else "--state"
        return f" -m {self.name} {opt} {','.join(self.states)}"

    def nft_text(self) -> str:
        """What ``nft list`` shows for this match in an iptables-nft rule."""
        if self.name in ("tcp", "udp"):
            parts = []
            for rng, fld in ((self.sport, "sport"), (self.dport, "dport")):
                if rng is not None and rng != (0, 65535):
                    v = str(rng[0]) if rng[0] == rng[1] else f"{rng[0]}-{rng[1]}"
                    parts.append(f"{self.name} {fld} {v}")
            return " ".join(parts)
        return "ct state " + ",".join(s.lower() for s in self.states)

    @property
    def ct_user(self) -> bool:
        return self.name in ("conntrack", "state")


@dataclass(eq=False)
class XtRule:
    proto: int = 0
    src: Optional[Net] = None
    dst: Optional[Net] = None
    iif: str = ""
    oif: str = ""
    matches: List[XtMatch] = field(default_factory=list)
    target: str = ""  # ACCEPT DROP RETURN NOTRACK CT, a user chain, or "" (no -j)
    notrack: bool = False  # CT --notrack
    einval: bool = False  # the kernel would refuse this rule (checkentry: EINVAL)
    pkts: int = 0
    bytes: int = 0

    def key(self):
        return (self.proto, self.src, self.dst, self.iif, self.oif,
                [(m.name, m.sport, m.dport, m.states) for m in self.matches], self.target, self.notrack)

    @property
    def ct_user(self) -> bool:
        return any(m.ct_user for m in self.matches)

    @property
    def compat(self) -> bool:
        """Does iptables-nft 1.8.9 use an xt compat expression for this rule?"""
        return self.ct_user or self.target in ("NOTRACK", "CT")

    def matches_skb(self, skb, state) -> bool:
        if self.proto and getattr(skb, "protocol", 6) != self.proto:
            return False
        if not (net_match(self.src, skb.saddr) and net_match(self.dst, skb.daddr)):
            return False
        if self.iif and self.iif != (state.in_dev or ""):
            return False
        if self.oif and self.oif != (state.out_dev or ""):
            return False
        return all(m.matches(skb) for m in self.matches)

    # -- printing -------------------------------------------------------------------
    def list_target(self) -> str:
        return "CT" if self.target in ("NOTRACK", "CT") else self.target

    def proto_col(self, numeric: bool, version: str) -> str:
        if numeric and (1, 8, 9) <= tuple(int(x) for x in version.split(".")) < (1, 8, 10):
            return str(self.proto)  # 1.8.9 prints protocol numbers with -n; 1.8.11 names again (golden 6.12)
        return PROTO_NAMES.get(self.proto, str(self.proto))

    def list_row(self, num: Optional[int], verbose: bool, numeric: bool, exact: bool, version: str) -> str:
        out = f"{num:<4d} " if num is not None else ""
        if verbose:
            out += fmt_num(self.pkts, exact) + fmt_num(self.bytes, exact)
        out += f"{self.list_target():<9s}  {self.proto_col(numeric, version):<5s}--  "
        if verbose:
            out += f"{self.iif or ('*' if numeric else 'any'):<6s} {self.oif or ('*' if numeric else 'any'):<7s} "
        out += f"{net_str(self.src, numeric):<19s}  {net_str(self.dst, numeric):<19s} "
        out += "".join(m.print(numeric) for m in self.matches)
        if self.target == "NOTRACK":
            out += " NOTRACK"
        elif self.target == "CT":
            out += " CT notrack"
        return out + "\n"

    def save(self, chain: str) -> str:
        out = f"-A {chain}"
        if self.src is not None:
            out += f" -s {net_str(self.src, save=True)}"
        if self.dst is not None:
            out += f" -d {net_str(self.dst, save=True)}"
        if self.iif:
            out += f" -i {self.iif}"
        if self.oif:
            out += f" -o {self.oif}"
        if self.proto:
            out += f" -p {PROTO_NAMES.get(self.proto, self.proto)}"
        out += "".join(m.save() for m in self.matches)
        if self.target == "CT":
            out += " -j CT --notrack"
        elif self.target:
            out += f" -j {self.target}"
        return out


def fmt_num(n: int, exact: bool, table: bool = True) -> str:
    """``xtables_print_num``: ``%5llu`` with K/M/G/T suffixes, or ``%8llu`` with -x."""
    if exact:
        return f"{n:8d} " if table else f"{n} "
    if n <= 99999:
        return f"{n:5d} " if table else f"{n} "
    for suffix in "KMGT":
        n = (n + 500) // 1000
        if n <= 9999 or suffix == "T":
            return f"{n:4d}{suffix} " if table else f"{n}{suffix} "
    return ""  # pragma: no cover


def list_header(chain: str, policy: Optional[str], pkts: int, bytes_: int, refs: int, verbose: bool,
                numeric: bool, exact: bool, linenum: bool) -> str:
    out = f"Chain {chain}"
    if policy is not None:
        out += f" (policy {policy}"
        if verbose:
            out += " " + fmt_num(pkts, exact, False) + "packets, " + fmt_num(bytes_, exact, False) + "bytes"
        out += ")\n"
    else:
        out += f" ({refs} references)\n"
    if linenum:
        out += "num  "
    if verbose:
        out += "    pkts      bytes " if exact else " pkts bytes "
    out += "target     prot opt "
    if verbose:
        out += "in     out     "
    return out + "source               destination         \n"


def parse_rule_spec(args: List[str], table: str, version: str) -> XtRule:
    """The rule-spec part of an iptables command line (after the chain)."""
    r = XtRule()
    i, n = 0, len(args)
    proto_set = False
    cur: Optional[XtMatch] = None

    def val(opt):
        if i + 1 >= n:
            raise XtError(f"option \"{opt}\" requires an argument")
        return args[i + 1]

    while i < n:
        a = args[i]
        if a in ("-p", "--protocol"):
            v = val(a).lower()
            if v.isdigit() and int(v) <= 255:
                r.proto = int(v)
            elif v in PROTOS:
                r.proto = PROTOS[v]
            else:
                raise XtError(f"unknown protocol \"{args[i + 1]}\" specified")
            proto_set = True
            i += 2
        elif a in ("-s", "--source", "--src", "-d", "--destination", "--dst"):
            net = parse_net(val(a))
            if a in ("-s", "--source", "--src"):
                r.src = net
            else:
                r.dst = net
            i += 2
        elif a in ("-i", "--in-interface", "-o", "--out-interface"):
            v = val(a)
            if len(v) > 15:
                raise XtError(f"interface name `{v}' must be shorter than IFNAMSIZ (15)")
            if a.startswith("-i") or a == "--in-interface":
                r.iif = v
            else:
                r.oif = v
            i += 2
        elif a in ("-m", "--match"):
            name = val(a)
            if name in ("tcp", "udp"):
                if r.proto != PROTOS[name]:
                    r.einval = True  # the kernel's tcp_mt_check refuses it: EINVAL
                cur = XtMatch(name)
            elif name in ("conntrack", "state"):
                cur = XtMatch(name)
            else:
                raise XtError(f"Couldn't load match `{name}':No such file or directory\n")
            r.matches.append(cur)
            i += 2
        elif a in ("--dport", "--destination-port", "--sport", "--source-port"):
            long = "--destination-port" if a in ("--dport", "--destination-port") else "--source-port"
            pname = PROTO_NAMES.get(r.proto)
            if not proto_set or pname not in ("tcp", "udp"):
                raise XtError(f"unknown option \"{a}\"")
            m = next((m for m in r.matches if m.name == pname), None)
            if m is None:
                m = XtMatch(pname)
                r.matches.append(m)
            rng = parse_port(val(a), a)
            if long == "--destination-port":
                if m.dport is not None:
                    raise XtError("Only one `--destination-port' allowed")
                m.dport = rng
            else:
                if m.sport is not None:
                    raise XtError("Only one `--source-port' allowed")
                m.sport = rng
            i += 2
        elif a in ("--ctstate", "--state"):
            want = "conntrack" if a == "--ctstate" else "state"
            m = next((m for m in r.matches if m.name == want), None)
            if m is None:
                raise XtError(f"unknown option \"{a}\"")
            states = set()
            for s in val(a).split(","):
                if s.upper() not in CT_STATES:
                    word = "ctstate" if want == "conntrack" else "state"
                    raise XtError(f"Bad {word} \"{s}\"")
                states.add(s.upper())
            m.states = tuple(s for s in CT_STATES if s in states)
            i += 2
        elif a in ("-j", "--jump"):
            t = val(a)
            if t in BUILTIN_TARGETS or t == "NOTRACK" or t == "CT":
                r.target = t
            elif t in UNMODELLED_TARGETS:
                raise XtError(f"nfteach: iptables -j {t} is not modelled (docs/simulator.md, non-goals); "
                              "supported targets: ACCEPT, DROP, RETURN, NOTRACK, CT --notrack, a user chain",
                              status=2, bare=True, tryhelp=False)
            elif t.startswith("-"):
                raise XtError(f"option \"{a}\" requires an argument")
            else:
                r.target = t  # user chain: checked by the caller
            i += 2
        elif a == "--notrack":
            if r.target != "CT":
                raise XtError("unknown option \"--notrack\"")
            r.notrack = True
            i += 1
        elif a == "!":
            raise XtError("nfteach: iptables `!' (inversion) is not modelled; supported: -p -s -d -i -o "
                          "--sport --dport -m tcp|udp|conntrack|state -j", status=2, bare=True, tryhelp=False)
        else:
            raise XtError(f"unknown option \"{a}\"" if a.startswith("-") else f"Bad argument `{a}'")
    for m in r.matches:
        if m.name in ("conntrack", "state") and not m.states:
            raise XtError("conntrack: At least one option is required" if m.name == "conntrack"
                          else "state match: You must specify \"--state\"")
    return r


# -- the NAT core (nf_nat_core.c nf_nat_register_fn): one set of hooks per netns and
# family, shared by the iptables nat table and nft nat chains, which plug into it.
# It does not call nf_ct_netns_get (neither iptable_nat.c nor nf_nat_register_fn do;
# the xt_nat/nft_nat *targets* do).
def nat_register(ns, pf: str, hooknum: int, priority: int, fn, owner: str):
    """Plug ``fn`` into the NAT core; returns a callable that unplugs it."""
    from .netfilter import NF_ACCEPT, HookOps

    core = ns.__dict__.setdefault("_nfteach_nat_core", {})
    entry = core.get(pf)
    if entry is None:
        prof = ns.kernel.profile
        suffix = "4" if pf == "ipv4" else "6"
        lookups: dict = {}
        ops = []
        for hk, (role, prio) in NAT_HOOKS.items():
            def nat_fn(skb, state, hk=hk):
                if ctinfo_state(skb) != "new":
                    return NF_ACCEPT
                for _p, f in sorted(lookups.get(hk, []), key=lambda x: x[0]):
                    v = f(skb, state)
                    if v != NF_ACCEPT:
                        return v
                return NF_ACCEPT
            ops.append(HookOps(pf, hk, prio, prof.hookfn[role + suffix], "nf_nat", fn=nat_fn))
        ns.nf.register_many(ops)
        entry = core[pf] = {"ops": ops, "lookups": lookups, "users": 0}
    item = (priority, fn)
    entry["lookups"].setdefault(hooknum, []).append(item)
    entry["users"] += 1

    def unplug():
        entry["lookups"][hooknum].remove(item)
        entry["users"] -= 1
        if entry["users"] == 0:
            ns.nf.unregister_many(entry["ops"])
            del core[pf]

    return unplug


NAT_HOOKS = {0: ("nat_pre", -100), 4: ("nat_post", 100), 3: ("nat_out", -100), 1: ("nat_in", 100)}
