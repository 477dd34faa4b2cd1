"""nft_do_chain on the simulator: verdicts and counters of a ruleset with a jump, a return,
a port set with a range and a drop policy (the rules run as compiled functions, the chain
walk with its jump stack)."""
from __future__ import annotations

import re

import pytest
from test_nftables import FakeKernel

from nfteach.sim.kernel.netfilter import LOCAL_IN, NF_ACCEPT, NF_DROP
from nfteach.sim.kernel.netns import HookState, Netns
from nfteach.sim.kernel.skb import SYN, Skb
from nfteach.sim.tools.nft import nft_main

RULESET = [
    "add table ip t",
    "add chain ip t in { type filter hook input priority 0 ; policy drop ; }",
    "add chain ip t reg",
    "add rule ip t in tcp dport 1000-2000 counter jump reg",
    "add rule ip t in tcp dport { 22, 80, 8000-8080 } counter accept",
    "add rule ip t reg tcp dport 1500 counter return",
    "add rule ip t reg tcp dport 1000-1499 counter accept",
]
# dport -> verdict, by nft's rules: a jump returns to the rule after it at `return` or at
# the end of the regular chain; the base chain's end applies its policy (drop)
EXPECTED = {22: NF_ACCEPT, 80: NF_ACCEPT, 8000: NF_ACCEPT, 8050: NF_ACCEPT, 8080: NF_ACCEPT,
            1000: NF_ACCEPT, 1200: NF_ACCEPT, 1499: NF_ACCEPT,
            1500: NF_DROP, 1800: NF_DROP, 2000: NF_DROP, 999: NF_DROP, 2001: NF_DROP,
            443: NF_DROP, 7999: NF_DROP, 8081: NF_DROP, 21: NF_DROP, 23: NF_DROP}


@pytest.fixture
def ns():
    n = Netns(FakeKernel("6.18"), "vm", 1)
    for line in RULESET:
        out = nft_main(n, ["nft"] + line.split())
        assert out.status == 0, (line, out.text)
    return n


def test_verdicts_through_jump_return_sets_ranges_and_policy(ns):
    [ops] = ns.nf.entries("ipv4", LOCAL_IN)
    state = HookState(LOCAL_IN, "ipv4", ns)
    for _ in range(2):  # the second pass runs the rules as compiled on the first
        got = {p: ops.fn(Skb("10.0.0.1", "192.168.122.204", 40000, p, SYN, options_len=20), state)
               for p in EXPECTED}
        assert got == EXPECTED
    listing = nft_main(ns, ["nft", "list", "ruleset"]).stdout
    counts = [int(n) for n in re.findall(r"counter packets (\d+) bytes", listing)]
    # twice each: rule 1 saw 1000-2000 (6 ports), rule 2 the set's 5, `return` 1500 once,
    # the regular chain's accept 1000, 1200 and 1499
    assert counts == [12, 10, 2, 6], listing


def test_sport_and_udp_do_not_match_a_tcp_dport_rule(ns):
    [ops] = ns.nf.entries("ipv4", LOCAL_IN)
    state = HookState(LOCAL_IN, "ipv4", ns)
    assert ops.fn(Skb("10.0.0.1", "192.168.122.204", 22, 443, SYN, options_len=20), state) == NF_DROP
    udp = Skb("10.0.0.1", "192.168.122.204", 40000, 22, 0, protocol=17)
    assert ops.fn(udp, state) == NF_DROP
