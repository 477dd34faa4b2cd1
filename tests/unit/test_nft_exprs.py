"""The kernel expressions of nf_tables rules and the module references they hold
(nfteach/sim/kernel/nft_exprs.py), against what vm 5.10/6.1 showed
(tests/golden/*/fidelity-nft-modules.txt)."""
import pytest

from nfteach.lab import Lab
from nfteach.sim.kernel import nft_exprs
from nfteach.sim.kernel.nftables import Expr
from nfteach.sim.kernel.xtables import parse_rule_spec


def _lsmod(kernel, *lines):
    with Lab("sim", kernel=kernel) as lab:
        for ln in lines:
            lab.run(ln)
        rows = lab.run("lsmod").output.splitlines()[1:]
    return {p[0]: (int(p[2]), p[3] if len(p) > 3 else "") for p in (r.split() for r in rows)}


def test_nft_rule_expressions():
    port = Expr("port", 6, "dport", ((2570, 2570),))
    assert nft_exprs.nft_types([port, Expr("counter"), Expr("verdict", "drop")]) == \
        ["meta", "cmp", "payload", "cmp", "counter", "immediate"]
    assert nft_exprs.nft_types([Expr("ct_state", frozenset({"new"})), Expr("counter")]) == \
        ["ct", "bitwise", "cmp", "counter"]
    # `meta l4proto tcp tcp dport 22`: nft does not repeat the dependency
    assert nft_exprs.nft_types([Expr("l4proto", 6), port]) == ["meta", "cmp", "payload", "cmp"]


def test_iptables_nft_rule_expressions():
    r = parse_rule_spec("-p tcp --dport 2570 -m conntrack --ctstate NEW -j DROP".split(), "filter", "1.8.9")
    assert nft_exprs.xt_types(r) == ["meta", "cmp", "payload", "cmp", "match", "counter", "immediate"]
    assert nft_exprs.xt_modules(r) == ["xt_tcpudp", "xt_conntrack"]
    assert nft_exprs.xt_held(r) == ["xt_conntrack"]
    r = parse_rule_spec("-p tcp --dport 2570 -j NOTRACK".split(), "raw", "1.8.9")
    assert nft_exprs.xt_types(r)[-2:] == ["counter", "target"] and nft_exprs.xt_held(r) == ["xt_CT"]


@pytest.mark.parametrize("kernel,counter_module", [("5.10", True), ("6.1", False), ("6.12", False)])
def test_iptables_nft_rule_holds_its_expression_modules(kernel, counter_module):
    mods = _lsmod(kernel, "sudo iptables-nft -A INPUT -p tcp --dport 2570 -j ACCEPT")
    # five built-in expressions (meta, cmp, payload, cmp, immediate) hold nf_tables, and the
    # counter too where it is built in (6.1+); the holders are modules that depend on it
    holders = mods["nf_tables"][1].split(",")
    assert mods["nf_tables"][0] == len(holders) + 5 + (0 if counter_module else 1)
    assert ("nft_counter" in mods) == counter_module
    if counter_module:
        assert mods["nft_counter"][0] == 1
    assert mods["xt_tcpudp"][0] == 0 and mods["nft_compat"][0] == 0
    mods = _lsmod(kernel, "sudo iptables-nft -A INPUT -p tcp --dport 2570 -j ACCEPT", "sudo iptables-nft -F")
    assert mods["nf_tables"][0] == len(mods["nf_tables"][1].split(","))


def test_a_missing_expression_module_costs_two_handles_on_5_10_only():
    lines = ["sudo nft add table ip t", "sudo nft add chain ip t c { type filter hook input priority 0 \\; }",
             "sudo nft add rule ip t c counter", "sudo nft add rule ip t c counter", "sudo nft -a list chain ip t c"]
    for kernel, first in (("5.10", 4), ("6.1", 2)):
        with Lab("sim", kernel=kernel) as lab:
            out = [lab.run(ln) for ln in lines][-1].output
        handles = [int(ln.rsplit(" ", 1)[1]) for ln in out.splitlines() if "counter packets" in ln]
        assert handles == [first, first + 1], (kernel, out)


def test_a_nat_chain_holds_nft_chain_nat_once():
    """One chain-type reference per base chain (nft_chain_parse_hook), an inet chain too."""
    mods = _lsmod("5.10", "sudo nft add table inet t", "sudo nft add chain inet t n { type nat hook output priority 0 \\; }",
                  "sudo nft add table ip u", "sudo nft add chain ip u n { type nat hook output priority 0 \\; }")
    assert mods["nft_chain_nat"][0] == 2
    mods = _lsmod("5.10", "sudo nft add table ip u", "sudo nft add chain ip u n { type nat hook output priority 0 \\; }",
                  "sudo nft delete table ip u")
    assert mods["nft_chain_nat"][0] == 0
