# ruff: noqa: W291  (the real tools print trailing spaces; the expected strings keep them)
"""iptables (legacy and nft variants) on the simulator, against the real tool.

Strings marked "real" were captured from the real iptables 1.8.9 (Debian 12) on a 6.18
kernel in a throwaway network namespace; 1.8.7 forms (profile 5.10) follow iptables
1.8.7's print_firewall (protocol names with -n) and are marked "1.8.7".
"""
from __future__ import annotations

import pytest
from test_nftables import FakeKernel, ct_balance

from nfteach.sim.kernel.netfilter import (
    FORWARD,
    LOCAL_IN,
    LOCAL_OUT,
    NF_ACCEPT,
    NF_DROP,
    POST_ROUTING,
    PRE_ROUTING,
)
from nfteach.sim.kernel.netns import HookState, Netns
from nfteach.sim.kernel.skb import IP_CT_ESTABLISHED, IP_CT_UNTRACKED, SYN, Skb
from nfteach.sim.tools.iptables import iptables_main
from nfteach.sim.tools.nft import nft_main


def mk(profile="6.18"):
    return Netns(FakeKernel(profile), "vm", 1)


def ipt(ns, line, variant=None):
    argv = line.split()
    variant = variant or ("legacy" if argv[0].endswith("legacy") else "nft")
    return iptables_main(ns, argv, variant)


RULES = [
    "-t filter -A INPUT -p tcp --dport 2570 -j DROP",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    "-A INPUT -s 10.0.0.0/8 -d 192.168.122.204 -p udp --sport 53 -j ACCEPT",
    "-A OUTPUT -p icmp -j DROP",
    "-I INPUT 2 -m state --state NEW -j ACCEPT",
]
# real (both variants print the same)
REAL_LNV = """\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:2570
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            state NEW
    0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
    0     0 ACCEPT     17   --  *      *       10.0.0.0/8           192.168.122.204      udp spt:53

Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 DROP       1    --  *      *       0.0.0.0/0            0.0.0.0/0           
"""
REAL_LN = """\
Chain INPUT (policy ACCEPT)
target     prot opt source               destination         
DROP       6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:2570
ACCEPT     0    --  0.0.0.0/0            0.0.0.0/0            state NEW
ACCEPT     0    --  0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
ACCEPT     17   --  10.0.0.0/8           192.168.122.204      udp spt:53

Chain FORWARD (policy ACCEPT)
target     prot opt source               destination         

Chain OUTPUT (policy ACCEPT)
target     prot opt source               destination         
DROP       1    --  0.0.0.0/0            0.0.0.0/0           
"""
REAL_LINENUM = """\
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:2570
2        0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            state NEW
3        0     0 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED
4        0     0 ACCEPT     17   --  *      *       10.0.0.0/8           192.168.122.204      udp spt:53
"""
REAL_S = """\
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-A INPUT -p tcp -m tcp --dport 2570 -j DROP
-A INPUT -m state --state NEW -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 10.0.0.0/8 -d 192.168.122.204/32 -p udp -m udp --sport 53 -j ACCEPT
-A OUTPUT -p icmp -j DROP
"""
REAL_RAW_X = """\
Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination         
       0        0 CT         6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:2570 NOTRACK
       0        0 CT         6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:2571 CT notrack

Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination         
"""


@pytest.mark.parametrize("variant", ["legacy", "nft"])
def test_listings_match_real_1_8_9(variant):
    ns = mk()
    prog = f"iptables-{variant}"
    for r in RULES:
        assert ipt(ns, f"{prog} {r}").status == 0
    assert ipt(ns, f"{prog} -L -n -v").stdout == REAL_LNV
    assert ipt(ns, f"{prog} -L -n").stdout == REAL_LN
    assert ipt(ns, f"{prog} -L INPUT -n -v --line-numbers").stdout == REAL_LINENUM
    assert ipt(ns, f"{prog} -S").stdout == REAL_S
    ipt(ns, f"{prog} -t raw -A PREROUTING -p tcp --dport 2570 -j NOTRACK")
    ipt(ns, f"{prog} -t raw -A PREROUTING -p tcp --dport 2571 -j CT --notrack")
    assert ipt(ns, f"{prog} -t raw -L -n -v -x").stdout == REAL_RAW_X
    assert ipt(ns, f"{prog} -t raw -S").stdout == (
        "-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n-A PREROUTING -p tcp -m tcp --dport 2570 -j NOTRACK\n"
        "-A PREROUTING -p tcp -m tcp --dport 2571 -j CT --notrack\n")


def test_names_without_n_real():
    ns = mk()
    for r in RULES[:3]:
        ipt(ns, f"iptables-nft {r}")
    assert ipt(ns, "iptables-nft -L INPUT -v").stdout == (
        "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n"
        " pkts bytes target     prot opt in     out     source               destination         \n"
        "    0     0 DROP       tcp  --  any    any     anywhere             anywhere             tcp dpt:2570\n"
        "    0     0 ACCEPT     all  --  any    any     anywhere             anywhere             "
        "ctstate RELATED,ESTABLISHED\n"
        "    0     0 ACCEPT     udp  --  any    any     10.0.0.0/8           192.168.122.204      udp spt:domain\n")


def test_nft_variant_writes_the_nft_state_real():
    ns = mk()
    for r in RULES[:3]:
        ipt(ns, f"iptables-nft {r}")
    out = nft_main(ns, ["nft", "-a", "list", "ruleset"])
    assert out.stdout == (
        "table ip filter { # handle 1\n\tchain INPUT { # handle 1\n"
        "\t\ttype filter hook input priority filter; policy accept;\n"
        "\t\ttcp dport 2570 counter packets 0 bytes 0 drop # handle 2\n"
        "\t\tct state related,established counter packets 0 bytes 0 accept # handle 3\n"
        "\t\tip saddr 10.0.0.0/8 ip daddr 192.168.122.204 udp sport 53 counter packets 0 bytes 0 accept # handle 4\n"
        "\t}\n}\n")
    assert out.stderr == "# Warning: table ip filter is managed by iptables-nft, do not touch!\n"
    [ops] = ns.nf.entries("ipv4", LOCAL_IN)
    assert (ops.hook, ops.priority) == ("nft_do_chain_ipv4", 0)
    assert not ns.nf.entries("ipv4", FORWARD)  # base chains on demand, as iptables-nft 1.8.9
    assert ct_balance(ns) == 1
    ipt(ns, "iptables-nft -F")
    assert ct_balance(ns) == 0 and ns.nf.entries("ipv4", LOCAL_IN)  # flushing keeps chains


def test_legacy_tables_register_hooks_on_first_use():
    ns = mk("5.10")
    ipt(ns, "iptables-legacy -t filter -A INPUT -p tcp --dport 2570 -j DROP")
    assert ("request_module", "iptable_filter") in ns.kernel.calls
    for h in (LOCAL_IN, FORWARD, LOCAL_OUT):
        assert [(o.hook, o.priority) for o in ns.nf.entries("ipv4", h)] == [("iptable_filter_hook", 0)]
    ipt(ns, "iptables-legacy -t raw -L -n")
    assert [o.hook for o in ns.nf.entries("ipv4", PRE_ROUTING)] == ["iptable_raw_hook"]
    ipt(ns, "iptables-legacy -t nat -L -n")
    assert [(o.hook, o.priority) for o in ns.nf.entries("ipv4", POST_ROUTING)] == [("nf_nat_ipv4_out", 100)]
    assert ct_balance(ns) == 0  # neither a table nor the NAT core is a conntrack user
    ipt(ns, "iptables-legacy -F")
    assert ns.nf.entries("ipv4", LOCAL_IN)  # tables stay
    six = mk("6.1")
    ipt(six, "iptables-legacy -L -n")
    assert ns.nf.entries("ipv4", LOCAL_IN)[0].hook == "iptable_filter_hook"
    assert six.nf.entries("ipv4", LOCAL_IN)[0].hook == "ipt_do_table"


def test_legacy_evaluation_counts_and_drops():
    ns = mk()
    ipt(ns, "iptables-legacy -A INPUT -p tcp --dport 2570 -j DROP")
    [ops] = ns.nf.entries("ipv4", LOCAL_IN)
    st = HookState(LOCAL_IN, "ipv4", ns)
    assert ops.fn(Skb("192.168.122.1", "192.168.122.204", 4, 2570, SYN, options_len=20), st) == NF_DROP
    assert ops.fn(Skb("192.168.122.1", "192.168.122.204", 4, 22, SYN, options_len=20), st) == NF_ACCEPT
    out = ipt(ns, "iptables-legacy -L INPUT -n -v").stdout
    assert out.splitlines()[0] == "Chain INPUT (policy ACCEPT 1 packets, 60 bytes)"
    assert out.splitlines()[2].startswith("    1    60 DROP ")


def test_conntrack_match_is_a_ct_user_and_notrack_is_not():
    ns = mk("5.10")
    ipt(ns, "iptables-legacy -A INPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT")
    assert ("ct_get", "ipv4") in ns.kernel.calls and ("module_get", "xt_conntrack") in ns.kernel.calls
    ipt(ns, "iptables-legacy -t raw -A PREROUTING -p tcp --dport 2570 -j CT --notrack")
    assert ct_balance(ns) == 1
    skb = Skb("192.168.122.1", "192.168.122.204", 4, 2570, SYN, nfct=object(), ctinfo=IP_CT_ESTABLISHED)
    [raw] = ns.nf.entries("ipv4", PRE_ROUTING)
    assert raw.fn(skb, HookState(PRE_ROUTING, "ipv4", ns)) == NF_ACCEPT
    assert skb.nfct is None and skb.ctinfo == IP_CT_UNTRACKED
    assert ipt(ns, "iptables-legacy -D INPUT 1").status == 0
    assert ct_balance(ns) == 0 and ("module_put", "xt_conntrack") in ns.kernel.calls


# (variant, command, status, stderr): real iptables 1.8.9 messages
REAL_ERRORS = [
    ("nft", "-A INPUT -p tcp --dport 70000 -j DROP", 2,
     "iptables v1.8.9 (nf_tables): invalid port/service `70000' specified\n"),
    ("nft", "-A INPUT -p tcp --dport -1 -j DROP", 2,
     "iptables v1.8.9 (nf_tables): invalid port/service `-1' specified\n"),
    ("nft", "-A INPUT --dport 22 -j DROP", 2, "iptables v1.8.9 (nf_tables): unknown option \"--dport\"\n"),
    ("nft", "-A INPUT -p foo -j DROP", 2, "iptables v1.8.9 (nf_tables): unknown protocol \"foo\" specified\n"),
    ("nft", "-A INPUT -j NOTRACK", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT\n"),
    ("nft", "-A INPUT -j CT --notrack", 4,
     "iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Invalid argument): rule in chain INPUT\n"),
    ("nft", "-A NOPE -j DROP", 1, "iptables: No chain/target/match by that name.\n"),
    ("nft", "-t bogus -L", 3, "iptables v1.8.9 (nf_tables): table 'bogus' does not exist\n"
     "Perhaps iptables or your kernel needs to be upgraded.\n"),
    ("nft", "-A INPUT -j FOO", 2, "iptables v1.8.9 (nf_tables): Chain 'FOO' does not exist\n"),
    ("nft", "-A INPUT -s 300.1.1.1 -j DROP", 2, "iptables v1.8.9 (nf_tables): host/network `300.1.1.1' not found\n"),
    ("nft", "-A INPUT -m conntrack --ctstate BOGUS -j DROP", 2, "iptables v1.8.9 (nf_tables): Bad ctstate \"BOGUS\"\n"),
    ("nft", "-D INPUT 9", 1, "iptables: Index of deletion too big.\n"),
    ("nft", "-D INPUT -p tcp --dport 9 -j DROP", 1, "iptables: Bad rule (does a matching rule exist in that chain?).\n"),
    ("nft", "-P INPUT FOO", 1, "iptables: Bad policy name. Run `dmesg' for more information.\n"),
    ("nft", "-Q", 2, "iptables v1.8.9 (nf_tables): unknown option \"-Q\"\n"),
    ("nft", "", 2, "iptables v1.8.9 (nf_tables): no command specified\n"),
    ("nft", "-A INPUT -m frob -j DROP", 2, "iptables v1.8.9 (nf_tables): Couldn't load match `frob':No such file or "
     "directory\n\n"),
    ("nft", "-A INPUT -p tcp --dport 1 --dport 2 -j DROP", 2,
     "iptables v1.8.9 (nf_tables): Only one `--destination-port' allowed\n"),
    ("nft", "-I INPUT 9 -j DROP", 1, "iptables: Index of insertion too big.\n"),
    ("legacy", "-A INPUT -j NOTRACK", 1, "iptables: Invalid argument. Run `dmesg' for more information.\n"),
    ("legacy", "-A INPUT -j CT --notrack", 1, "iptables: Invalid argument. Run `dmesg' for more information.\n"),
    ("legacy", "-t bogus -L", 3, "iptables v1.8.9 (legacy): can't initialize iptables table `bogus': Table does not "
     "exist (do you need to insmod?)\nPerhaps iptables or your kernel needs to be upgraded.\n"),
    ("legacy", "-L FOO", 1, "iptables: No chain/target/match by that name.\n"),
    ("legacy", "-t raw -A INPUT -j DROP", 1, "iptables: No chain/target/match by that name.\n"),
    ("legacy", "-I INPUT 0 -j DROP", 2, "iptables v1.8.9 (legacy): Invalid rule number `0'\n"),
    ("legacy", "-D INPUT abc", 2, "iptables v1.8.9 (legacy): Invalid rule number `abc'\n"),
    ("legacy", "-P FOO DROP", 1, "iptables: Bad built-in chain name.\n"),
    ("nft", "-P FOO DROP", 1, "iptables: Bad built-in chain name.\n"),
    ("legacy", "-A INPUT -p tcp --dport 22 -j FROB", 2,
     "iptables v1.8.9 (legacy): Couldn't load target `FROB':No such file or directory\n\n"),
    ("legacy", "-A INPUT -p tcp --dport 2570; rm -rf / -j DROP", 2, None),
    ("nft", "-A INPUT -p tcp --dport $(x) -j DROP", 2,
     "iptables v1.8.9 (nf_tables): invalid port/service `$(x)' specified\n"),
]
TRY = "Try `iptables -h' or 'iptables --help' for more information.\n"


@pytest.mark.parametrize("variant,line,status,stderr", REAL_ERRORS, ids=[f"{v}:{c[:30]}" for v, c, _s, _e in REAL_ERRORS])
def test_real_error_messages(variant, line, status, stderr):
    ns = mk()
    argv = [f"iptables-{variant}"] + line.split()
    out = iptables_main(ns, argv, variant)
    assert out.status == status and out.stdout == ""
    if stderr is not None:
        expected = stderr + (TRY if status == 2 else "")
        assert out.stderr == expected


def test_quoted_hostile_port_real():
    out = iptables_main(mk(), ["iptables-nft", "-A", "INPUT", "-p", "tcp", "--dport", "2570; rm -rf /", "-j", "DROP"],
                        "nft")
    assert out.stderr == "iptables v1.8.9 (nf_tables): invalid port/service `2570; rm -rf /' specified\n" + TRY


@pytest.mark.parametrize("args", [
    ["-A", "INPUT", "-p", "tcp", "--dport", "ü"], ["-A", "INPUT", "-s", "x" * 10000], ["-A"],
    ["-A", "INPUT", "!", "-p", "tcp"], ["-A", "INPUT", "-p", "tcp", "--dport", "1e9"],
    ["-A", "INPUT", "-p", "tcp", "--dport", "99999999999999999999999"], ["-t"], ["-L", "-t"],
    ["-A", "INPUT", "-j", "CT"], ["-A", "INPUT", "-i", "a" * 40, "-j", "DROP"],
    ["-A", "INPUT", "-m", "conntrack", "-j", "DROP"], ["-A", "INPUT", "--notrack"],
    ["-t", "nat", "-A", "POSTROUTING", "-j", "DROP"], ["-X", "INPUT"], ["-A", "INPUT", "-s", "1.2.3.4/99"],
], ids=lambda a: " ".join(a)[:30])
@pytest.mark.parametrize("variant", ["legacy", "nft"])
def test_hostile_input_is_a_short_error(args, variant):
    out = iptables_main(mk(), [f"iptables-{variant}"] + args, variant)
    assert out.status != 0 and out.stderr and "Traceback" not in out.text
    assert len(out.stderr.splitlines()) <= 5  # nat + DROP: 5 lines on iptables 1.8.9 (fidelity-edges.lab)


def test_user_chain_real():
    ns = mk()
    for line in ["-N X", "-A INPUT -j X"]:
        assert ipt(ns, "iptables-legacy " + line).status == 0
    assert ipt(ns, "iptables-legacy -L X -n").stdout == (
        "Chain X (1 references)\ntarget     prot opt source               destination         \n")
    assert ipt(ns, "iptables-legacy -S").stdout == (
        "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N X\n-A INPUT -j X\n")
