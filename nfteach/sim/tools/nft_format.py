"""``nft list`` output, as nft 0.9.8 / 1.0.6 print it (tabs, ``# handle N`` with ``-a``).

Rules written by iptables-nft are printed the way nft shows them next to the iptables
version of the profile: iptables 1.8.7 used xt compat matches for ``-m tcp``, so nft
shows the protocol dependency (``meta l4proto tcp tcp dport 2570``); 1.8.9 emits native
payload matches and nft elides the dependency (``tcp dport 2570``), as measured here.

>>> prio2str(2147483647, 1), prio2str(10, 1), prio2str(-100, 1), prio2str(-100, 0)
('2147483647', 'filter + 10', '-100', 'dstnat')
"""
from __future__ import annotations

from typing import List

from ...model.netfilter import NFT_HOOK_WORDS
from ..kernel.nftables import CT_STATE_BITS, Expr, NftChain, NftRule, NftTable
from ..kernel.xtables import PROTO_NAMES, net_str

HOOK_WORDS = NFT_HOOK_WORDS
# src/rule.c std_prios[] and std_prio_family_hook_compat() (nft 0.9.8 .. 1.0.6)
STD_PRIOS = (("raw", -300), ("mangle", -150), ("dstnat", -100), ("filter", 0), ("security", 50), ("srcnat", 100))


#: the first nft whose ``std_prio_family_hook_compat`` also names dstnat on output and
#: srcnat on input (nftables commit "rule: allow src/dstnat prios in input and output
#: chains", 2023: 1.0.6 prints ``-100`` for an output nat chain, 1.1.3 ``dstnat``)
NAT_PRIOS_ANY_NAT_HOOK = (1, 0, 8)


def prio_compat(name: str, hooknum: int, nft_version: tuple = ()) -> bool:
    wide = nft_version >= NAT_PRIOS_ANY_NAT_HOOK
    if name == "dstnat":
        return hooknum == 0 or (wide and hooknum == 3)
    if name == "srcnat":
        return hooknum == 4 or (wide and hooknum == 1)
    return True


def prio2str(prio: int, hooknum: int, nft_version: tuple = ()) -> str:
    """``prio2str()``: a standard name +/- up to 10, else the number."""
    for name, val in STD_PRIOS:
        if abs(prio - val) <= 10:
            if not prio_compat(name, hooknum, nft_version):
                break
            off = prio - val
            return name + (f" + {off}" if off > 0 else f" - {-off}" if off < 0 else "")
    return str(prio)


def _vals(e: Expr) -> str:
    items = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in e.c]
    return "{ " + ", ".join(items) + " }" if e.is_set else items[0]


def expr_text(exprs: List[Expr], i: int) -> str:
    e = exprs[i]
    if e.kind == "l4proto":
        nxt = exprs[i + 1] if i + 1 < len(exprs) else None
        if nxt is not None and nxt.kind == "port" and nxt.a == e.a:
            return ""  # the dependency nft itself would have generated: not printed
        return f"meta l4proto {PROTO_NAMES.get(e.a, e.a)}"
    if e.kind == "port":
        return f"{PROTO_NAMES[e.a]} {e.b} {_vals(e)}"
    if e.kind == "ip":
        return f"ip {e.a} {net_str(e.b)}"
    if e.kind == "ct_state":
        states = [s for s in CT_STATE_BITS if s in e.a]
        return "ct state " + ("{ " + ", ".join(states) + " }" if e.is_set else ",".join(states))
    if e.kind == "counter":
        return f"counter packets {e.pkts} bytes {e.bytes}"
    if e.kind == "notrack":
        return "notrack"
    if e.kind == "verdict":
        return e.a if e.b is None else f"{e.a} {e.b}"
    return ""


def xt_rule_text(xt, iptables_version: str) -> str:
    """An iptables-nft rule as nft prints it."""
    parts = []
    if xt.iif:
        parts.append(f'iifname "{xt.iif}"')
    if xt.oif:
        parts.append(f'oifname "{xt.oif}"')
    if xt.src is not None:
        parts.append(f"ip saddr {net_str(xt.src)}")
    if xt.dst is not None:
        parts.append(f"ip daddr {net_str(xt.dst)}")
    ports = [m for m in xt.matches if m.name in ("tcp", "udp") and m.nft_text()]
    if xt.proto and (_vt(iptables_version) < (1, 8, 8) or not ports):
        parts.append(f"meta l4proto {PROTO_NAMES.get(xt.proto, xt.proto)}")
    parts += [m.nft_text() for m in xt.matches if m.nft_text()]
    parts.append(f"counter packets {xt.pkts} bytes {xt.bytes}")
    if xt.target in ("NOTRACK", "CT"):
        parts.append("notrack")
    elif xt.target in ("ACCEPT", "DROP", "RETURN"):
        parts.append(xt.target.lower())
    elif xt.target:
        parts.append(f"jump {xt.target}")
    return " ".join(parts)


def _vt(v: str) -> tuple:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def rule_text(r: NftRule, iptables_version: str) -> str:
    if r.xt is not None:
        return xt_rule_text(r.xt, iptables_version)
    return " ".join(t for t in (expr_text(r.exprs, i) for i in range(len(r.exprs))) if t)


def chain_text(c: NftChain, handles: bool, iptables_version: str, nft_version: tuple = ()) -> str:
    out = f"\tchain {c.name} {{" + (f" # handle {c.handle}" if handles else "") + "\n"
    if c.base:
        prio = prio2str(c.priority, c.hooknum, nft_version)
        out += (f"\t\ttype {c.type} hook {HOOK_WORDS[c.hooknum]} priority {prio};"
                f" policy {c.policy};\n")
    for r in c.rules:
        out += "\t\t" + rule_text(r, iptables_version) + (f" # handle {r.handle}" if handles else "") + "\n"
    return out + "\t}\n"


def table_text(t: NftTable, handles: bool, iptables_version: str, chains=None, nft_version: tuple = ()) -> str:
    out = f"table {t.family} {t.name} {{" + (f" # handle {t.handle}" if handles else "") + "\n"
    out += "\n".join(chain_text(c, handles, iptables_version, nft_version) for c in (chains or t.chains.values()))
    return out + "}\n"
