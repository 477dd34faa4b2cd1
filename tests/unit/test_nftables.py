"""nft on the simulator, byte for byte against the real nft.

Expected strings marked "real" were captured from the real nft 1.0.6 (Debian 12,
1.0.6-2+deb12u2) on a 6.18 kernel, inside a throwaway network namespace.
"""
from __future__ import annotations

import pytest

from nfteach.model.profile import load_profile
from nfteach.sim.kernel.netfilter import LOCAL_IN, NF_ACCEPT, NF_DROP
from nfteach.sim.kernel.netns import HookState, Netns
from nfteach.sim.kernel.skb import IP_CT_NEW, IP_CT_UNTRACKED, SYN, Skb
from nfteach.sim.tools.nft import nft_main


class FakeConntrack:
    def __init__(self, calls):
        self.calls = calls

    def netns_get(self, ns, pf):
        self.calls.append(("ct_get", pf))

    def netns_put(self, ns, pf):
        self.calls.append(("ct_put", pf))


class FakeKernel:
    """Just what the firewall front ends use: a profile, modules, conntrack users."""

    def __init__(self, profile="6.18"):
        self.profile = load_profile(profile)
        self.calls = []
        self.conntrack = FakeConntrack(self.calls)

    def request_module(self, name):
        self.calls.append(("request_module", name))

    def module_get(self, name, holder=""):
        self.calls.append(("module_get", name))

    def module_put(self, name, holder=""):
        self.calls.append(("module_put", name))


@pytest.fixture(params=["6.18"])
def ns(request):
    return Netns(FakeKernel(request.param), "vm", 1)


def nft(ns, line):
    return nft_main(ns, ["nft"] + line.split())


def ct_balance(ns):
    return sum(+1 if c[0] == "ct_get" else -1 if c[0] == "ct_put" else 0 for c in ns.kernel.calls)


ARTICLE = [
    "add table ip my_table",
    "add chain ip my_table my_input { type filter hook input priority 2147483647 ; }",
    "add rule ip my_table my_input tcp dport 2570 counter drop",
]
# real: the article's three commands, then `nft -a list ruleset` (the article's own
# listing shows `# handle 4` for the rule; the kernel gives 2 when nothing else happened)
REAL_ARTICLE_LISTING = (
    "table ip my_table { # handle 1\n"
    "\tchain my_input { # handle 1\n"
    "\t\ttype filter hook input priority 2147483647; policy accept;\n"
    "\t\ttcp dport 2570 counter packets 0 bytes 0 drop # handle 2\n"
    "\t}\n"
    "}\n"
)


def test_article_listing_and_hook(ns):
    for line in ARTICLE:
        out = nft(ns, line)
        assert (out.status, out.text) == (0, "")
    assert nft(ns, "-a list ruleset").stdout == REAL_ARTICLE_LISTING
    [ops] = ns.nf.entries("ipv4", LOCAL_IN)
    assert (ops.hook, ops.priority, ops.owner) == ("nft_do_chain_ipv4", 2147483647, "nft ip my_table my_input")
    syn = Skb("192.168.122.1", "192.168.122.204", 40000, 2570, SYN, options_len=20)
    assert ops.fn(syn, HookState(LOCAL_IN, "ipv4", ns)) == NF_DROP
    other = Skb("192.168.122.1", "192.168.122.204", 40000, 22, SYN, options_len=20)
    assert ops.fn(other, HookState(LOCAL_IN, "ipv4", ns)) == NF_ACCEPT
    assert "counter packets 1 bytes 60 drop" in nft(ns, "list ruleset").stdout
    assert ct_balance(ns) == 0  # no ct expression: not a conntrack user


def test_plain_listing_has_no_handles(ns):
    for line in ARTICLE:
        nft(ns, line)
    assert nft(ns, "list ruleset").stdout == REAL_ARTICLE_LISTING.replace(" # handle 1", "").replace(
        " # handle 2", "")


def test_table_handles_never_go_back(ns):
    # real: flush ruleset, then a new table gets the next handle (3 after 1 and 2)
    nft(ns, "add table ip my_table")
    nft(ns, "add table ip t2")
    nft(ns, "flush ruleset")
    nft(ns, "add table ip my_table")
    assert nft(ns, "-a list ruleset").stdout == "table ip my_table { # handle 3\n}\n"


REAL_PRIORITIES = """\
table ip t { # handle 1
\tchain a { # handle 1
\t\ttype filter hook input priority filter + 10; policy accept;
\t\tudp dport 53 notrack # handle 16
\t\tct state established,new counter packets 0 bytes 0 accept # handle 11
\t\tip saddr 10.0.0.1 ip daddr 10.1.0.0/16 tcp sport 22 counter packets 0 bytes 0 # handle 12
\t\tmeta l4proto tcp counter packets 0 bytes 0 jump reg # handle 13
\t\tct state invalid,related,untracked drop # handle 17
\t}

\tchain b { # handle 2
\t\ttype filter hook input priority filter; policy accept;
\t}

\tchain c { # handle 3
\t\ttype filter hook input priority raw; policy accept;
\t}

\tchain d { # handle 4
\t\ttype filter hook output priority filter + 1; policy accept;
\t}

\tchain f { # handle 5
\t\ttype filter hook output priority mangle - 5; policy accept;
\t}

\tchain g { # handle 6
\t\ttype filter hook forward priority 100; policy accept;
\t}

\tchain h { # handle 7
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t}

\tchain i { # handle 8
\t\ttype filter hook prerouting priority mangle; policy accept;
\t}

\tchain reg { # handle 9
\t\ttcp dport { 22, 80 } return # handle 15
\t}

\tchain j { # handle 10
\t\ttype filter hook input priority security; policy drop;
\t}
}
"""


def test_priorities_names_wraparound_and_rules(ns):
    lines = [
        "add table ip t",
        "add chain ip t a { type filter hook input priority filter + 10 ; }",
        "add chain ip t b { type filter hook input priority 0 ; }",
        "add chain ip t c { type filter hook input priority -300 ; }",
        "add chain ip t d { type filter hook output priority 4294967297 ; }",  # low 32 bits: 1
        "add chain ip t f { type filter hook output priority mangle -5 ; }",
        "add chain ip t g { type filter hook forward priority 100 ; }",
        "add chain ip t h { type nat hook postrouting priority 100 ; }",
        "add chain ip t i { type filter hook prerouting priority -150 ; }",
        "add chain ip t reg",
        "add chain ip t j { type filter hook input priority security ; policy drop ; }",
        "add rule ip t a ct state new,established counter accept",
        "add rule ip t a ip saddr 10.0.0.1 ip daddr 10.1.0.0/16 tcp sport 22 counter",
        "add rule ip t a meta l4proto tcp counter jump reg",
        "add rule ip t reg tcp dport { 22, 80 } return",
        "insert rule ip t a udp dport 53 notrack",
        "add rule ip t a ct state invalid,untracked,related drop",
    ]
    for line in lines:
        out = nft(ns, line)
        assert out.status == 0, (line, out.text)
    got = nft(ns, "-a list ruleset").stdout
    # the anonymous set `{ 22, 80 }` took handle 14, as in the kernel; the real run also
    # had one failing command (chain e, not repeated here) that consumed no handle
    assert got == REAL_PRIORITIES
    assert ct_balance(ns) == 2  # two ct expressions: two nf_ct_netns_get
    nft(ns, "delete table ip t")
    assert ct_balance(ns) == 0
    assert all(not ns.nf.entries("ipv4", h) for h in range(5))


def test_2147483648_wraps_to_int_min(ns):
    # real nft 1.0.6 accepts it and the chain shows priority -2147483648
    nft(ns, "add table ip t")
    assert nft(ns, "add chain ip t c { type filter hook input priority 2147483648 ; }").status == 0
    assert "priority -2147483648;" in nft(ns, "list ruleset").stdout
    assert ns.nf.entries("ipv4", LOCAL_IN)[0].priority == -2147483648


def test_ct_state_rule_is_a_conntrack_user(ns):
    nft(ns, "add table inet t")
    nft(ns, "add chain inet t c { type filter hook input priority 0 ; }")
    nft(ns, "add rule inet t c ct state established,related accept")
    assert ("ct_get", "inet") in ns.kernel.calls and ("module_get", "nft_ct") in ns.kernel.calls
    assert [o.hook for o in ns.nf.entries("ipv4", LOCAL_IN)] == ["nft_do_chain_inet"]
    assert [o.hook for o in ns.nf.entries("ipv6", LOCAL_IN)] == ["nft_do_chain_inet"]
    out = nft(ns, "-a list chain inet t c").stdout
    assert "ct state established,related accept # handle 2" in out
    nft(ns, "delete rule inet t c handle 2")
    assert ct_balance(ns) == 0


def test_notrack_and_regular_chain_contract_emulation(ns):
    # the lab's enable_hooks emulation: a ct rule in a regular chain, no hook
    for line in ["add table inet nfteach_ct", "add chain inet nfteach_ct enable_hooks",
                 "add rule inet nfteach_ct enable_hooks ct state established"]:
        assert nft(ns, line).status == 0
    assert ct_balance(ns) == 1 and not ns.nf.entries("ipv4", LOCAL_IN)
    nft(ns, "delete table inet nfteach_ct")
    assert ct_balance(ns) == 0
    nft(ns, "add table ip raw")
    nft(ns, "add chain ip raw pre { type filter hook prerouting priority raw ; }")
    nft(ns, "add rule ip raw pre tcp dport 2570 notrack")
    assert ct_balance(ns) == 0  # notrack is no conntrack user
    skb = Skb("192.168.122.1", "192.168.122.204", 1, 2570, SYN, nfct=object(), ctinfo=IP_CT_NEW)
    [ops] = ns.nf.entries("ipv4", 0)
    assert ops.fn(skb, HookState(0, "ipv4", ns)) == NF_ACCEPT
    assert skb.nfct is None and skb.ctinfo == IP_CT_UNTRACKED


def test_version(ns):
    assert nft(ns, "-v").stdout == "nftables v1.0.6 (Lester Gooch #5)\n"  # real


# (command, expected stderr) pairs captured from the real nft 1.0.6; table `ip t` and its
# input chain `c` (priority 0) exist before each command
REAL_ERRORS = [
    ("add chain ip t c { type filter hook input priority 1e9 ; }",
     "Error: syntax error, unexpected string, expecting newline or semicolon\n"
     "add chain ip t c { type filter hook input priority 1e9 ; }\n"
     "                                                    ^^\n"),
    ("add chain ip t x { type filter hook input priority foo ; }",
     "Error: invalid priority expression value in this context.\n"
     "add chain ip t x { type filter hook input priority foo ; }\n"
     "                                          ^^^^^^^^^^^^\n"),
    ("add chain ip t e { type filter hook output priority 99999999999999999999 ; }",
     "Error: invalid priority expression value in this context.\n"
     "add chain ip t e { type filter hook output priority 99999999999999999999 ; }\n"
     "                                           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"),
    ("add chain ip t x { type filter hook input priority dstnat ; }",
     "Error: invalid priority expression value in this context.\n"
     "add chain ip t x { type filter hook input priority dstnat ; }\n"
     "                                          ^^^^^^^^^^^^^^^\n"),
    ("add chain ip t c5 { type filter hook bogus priority 0 ; }",
     "Error: unknown chain hook\n"
     "add chain ip t c5 { type filter hook bogus priority 0 ; }\n"
     "                                     ^^^^^\n"),
    ("add chain ip t x { type bogus hook input priority 0 ; }",
     "Error: unknown chain type\n"
     "add chain ip t x { type bogus hook input priority 0 ; }\n"
     "                        ^^^^^\n"),
    ("add chain ip t x { type filter hook input priority 0 ; policy foo ; }",
     "Error: syntax error, unexpected string, expecting accept or drop or '$'\n"
     "add chain ip t x { type filter hook input priority 0 ; policy foo ; }\n"
     "                                                              ^^^\n"),
    ("add chain ip t x { type filter hook input ; }",
     "Error: syntax error, unexpected semicolon, expecting priority\n"
     "add chain ip t x { type filter hook input ; }\n"
     "                                          ^\n"),
    ("add chain ip t c { type filter hook input priority 5 ; }",
     "Error: Could not process rule: Operation not supported\n"
     "add chain ip t c { type filter hook input priority 5 ; }\n"
     # one caret past the `}` (re-measured with nft 1.0.6 on 6.18, argv and -f alike)
     "^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"),
    ("add rule ip t c tcp dport 70000 drop",
     "Error: Service out of range\nadd rule ip t c tcp dport 70000 drop\n                          ^^^^^\n"),
    ("add rule ip t nochain tcp dport 1 drop",
     "Error: Could not process rule: No such file or directory\n"
     "add rule ip t nochain tcp dport 1 drop\n              ^^^^^^^\n"),
    ("add rule ip t c tcp dport 1 frobnicate",
     "Error: syntax error, unexpected newline\nadd rule ip t c tcp dport 1 frobnicate\n"
     "                                      ^\n"),
    ("create table ip t", "Error: Could not process rule: File exists\ncreate table ip t\n                ^\n"),
    ("delete table ip nonexist",
     "Error: Could not process rule: No such file or directory\ndelete table ip nonexist\n"
     "                ^^^^^^^^\n"),
    ("add table foo t",
     "Error: syntax error, unexpected string, expecting end of file or newline or semicolon\n"
     "add table foo t\n              ^\n"),
    ("delete chain ip t nope",
     "Error: Could not process rule: No such file or directory\ndelete chain ip t nope\n"
     "                  ^^^^\n"),
    ("add rule ip t c ip saddr 300.1.1.1 drop",
     "Error: Could not resolve hostname: Name or service not known\n"
     "add rule ip t c ip saddr 300.1.1.1 drop\n                         ^^^^^^^^^\n"),
    ("add rule ip t c ct state bogus drop",
     "Error: Could not parse conntrack state\nadd rule ip t c ct state bogus drop\n"
     "                         ^^^^^\n"),
    ("add rule ip t c jump nowhere",
     "Error: Could not process rule: No such file or directory\nadd rule ip t c jump nowhere\n"
     "                     ^^^^^^^\n"),
    ("bogus", "Error: syntax error, unexpected newline, expecting string\nbogus\n     ^\n"),
    ("list chain ip t zz", "Error: No such file or directory\nlist chain ip t zz\n                ^^\n"),
    ("add rule ip t c tcp dport $(x) drop",
     "Error: syntax error, unexpected '(', expecting string\nadd rule ip t c tcp dport $(x) drop\n"
     "                           ^\n"),
]


@pytest.mark.parametrize("line,stderr", REAL_ERRORS, ids=[c[0][:40] for c in REAL_ERRORS])
def test_real_error_messages(ns, line, stderr):
    nft(ns, "add table ip t")
    nft(ns, "add chain ip t c { type filter hook input priority 0 ; }")
    before = nft(ns, "-a list ruleset").stdout
    out = nft(ns, line)
    assert (out.status, out.stdout, out.stderr) == (1, "", stderr)
    assert nft(ns, "-a list ruleset").stdout == before


def test_dash_after_command_is_an_option_error(ns):
    # real: stderr gets the message and the arguments, stdout the caret line (sic)
    out = nft_main(ns, ["nft", "add", "rule", "ip", "t", "c", "tcp", "dport", "-1", "drop"])
    assert out.status == 1
    assert out.stderr == ("Error: syntax error, options must be specified before commands\n"
                          "nft add rule ip t c tcp dport -1 drop ")
    assert out.stdout == "\n   ^                          ~~\n"


HOSTILE = [
    ["add", "rule", "ip", "t", "c", "tcp", "dport", "2570; rm -rf /", "drop"],
    ["add", "rule", "ip", "t", "c", "ü"],
    ["add", "table", "ip", "x" * 5000, "{"],
    ["add", "chain", "ip", "t", "c", "{", "type", "filter", "hook", "input", "priority", "1e9", ";", "}"],
    ["add", "chain", "ip", "t", "c", "{", "type", "filter", "hook", "input", "priority", "filter", "+", ";", "}"],
    ["add", "chain", "ip", "t", "c", "{"],
    ["add", "rule", "ip", "t", "c", "tcp", "dport", "{", "1,", "}"],
    ["add", "rule", "ip", "t", "c", "tcp", "flags", "syn"],
    ["add", "rule", "ip", "t", "c", "meta", "mark", "1"],
    ["add", "rule", "ip", "t", "c", "ip", "saddr", "$(x)"],
    ["add", "rule", "ip", "t", "c", "ct", "mark", "1"],
    ["add", "rule", "ip", "t", "c", "tcp", "dport", "ssh-foo"],
    ["add", "rule", "bridge", "t", "c", "drop"],
    ["-Q", "list", "ruleset"],
    ["-j", "list", "ruleset"],
    ["--bogus"],
    [],
    ["delete", "rule", "ip", "t", "c", "handle", "x"],
    ["delete", "rule", "ip", "t", "c", "handle", "99"],
    ["list", "table", "ip", "\x00\x01"],
    ["add", "rule", "ip", "t", "c", "tcp", "dport", "1-", "drop"],
    ["replace", "rule", "ip", "t", "c", "handle", "2", "drop"],
    ["add", "rule", "ip", "t", "c", "counter", "packets", "5"],
]


@pytest.mark.parametrize("args", HOSTILE, ids=[" ".join(a)[:30] for a in HOSTILE])
def test_hostile_input_is_a_short_error(ns, args):
    nft(ns, "add table ip t")
    nft(ns, "add chain ip t c")
    out = nft_main(ns, ["nft"] + args)
    assert out.status != 0
    assert "Traceback" not in out.text and out.stderr
    assert len(out.stderr.splitlines()) <= 3


def test_delete_chain_deletes_its_rules_unless_jumped_to(ns):
    for line in ["add table ip t", "add chain ip t a", "add chain ip t b",
                 "add rule ip t a ct state new jump b", "add rule ip t b ct state new accept"]:
        assert nft(ns, line).status == 0
    out = nft(ns, "delete chain ip t b")
    assert out.status == 1 and "Device or resource busy" in out.stderr
    assert nft(ns, "delete chain ip t a").status == 0
    assert nft(ns, "delete chain ip t b").status == 0
    assert ct_balance(ns) == 0
