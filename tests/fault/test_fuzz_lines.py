"""Generated command lines against the lab and the rule parsers (hypothesis).

Lines are built from the lab's command vocabulary (what the article and the scenarios
type) and mutated with hostile fragments: shell syntax, stray quotes and braces, huge
and negative numbers, unicode, control characters. Whatever comes in:

* no exception escapes ``Lab.run`` and nothing says "internal error" or "Traceback";
* a rejection is at most 3 lines and its first line names the problem
  (``tests/fault/rejections.py`` lists the longer texts real tools print).

The nft and iptables parsers are also called directly with generated argument lists, as
a backend would call them (no lab line parsing in between). Case counts: see
``EXAMPLES``; together well over 10,000 generated cases, in well under a minute.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfteach import Lab
from nfteach.cmdline import parse_line
from nfteach.model.errors import LabError
from nfteach.sim.kernel.kernel import Kernel
from nfteach.sim.tools.iptables import iptables_main
from nfteach.sim.tools.nft import nft_main

from .rejections import problems

#: hypothesis examples per test; each example carries several cases (lines or argument lists)
EXAMPLES = {"lab": 1800, "raw": 500, "nft": 700, "iptables": 700}
#: cases actually run, by test (printed in the terminal summary by tests/fault/conftest.py)
CASES = {"Lab.run lines": 0, "Lab.run raw text": 0, "nft_main argv": 0, "iptables_main argv": 0}
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)

HOSTILE = [
    ";", "&&", "||", "|", "&", ">", "<", ">>", "2>&1", "`id`", "$(id)", "$HOME", "${IFS}", "'", '"', "\\",
    "\\;", "{", "}", "{ }", ";;", "#", "# comment", "\x00", "\t", "\x1b[31m", "\u00e9", "\u202e", "\U0001f4a5",
    "-", "--", "---", "-1", "-0", "0", "00", "-2147483649", "2147483648", "4294967296", "99999999999999999999",
    "1e9", "0x10", "NaN", "inf", "%1", "%0", "%99", "@host", "@vm", "@", "sudo", "", " ", "x" * 300, "-" * 50,
    "..", "../../etc/passwd", "/proc/self/environ", "*", "?", "[", "]", "^", "$", "=", "==", ",", ",,",
]

NFT_WORDS = [
    "add", "delete", "flush", "list", "insert", "replace", "create", "table", "tables", "chain", "chains",
    "rule", "ruleset", "ip", "ip6", "inet", "arp", "bridge", "netdev", "t", "my_table", "c", "my_input", "in",
    "{", "}", "\\;", ";", "type", "filter", "nat", "route", "hook", "input", "output", "prerouting",
    "postrouting", "forward", "ingress", "priority", "0", "-1", "100", "2147483647", "-2147483648",
    "raw", "mangle", "dstnat", "srcnat", "security", "policy", "accept", "drop", "tcp", "udp", "dport",
    "sport", "2570", "22", "1-1024", "{ 22, 2570 }", "counter", "ct", "state", "established", "new",
    "invalid", "related", "untracked", "notrack", "jump", "goto", "return", "continue", "handle", "1", "2",
    "position", "index", "packets", "bytes", "ip saddr", "192.168.122.1", "10.0.0.0/8", "log", "meta",
    "l4proto", "iif", "lo", "eth0", "!=", "-a", "-n", "-s", "-t", "-v", "-j", "-f", "--", "--handle",
]

XT_WORDS = [
    "-t", "filter", "raw", "nat", "mangle", "security", "nosuch", "-A", "-I", "-D", "-F", "-L", "-S", "-P",
    "-N", "-X", "-Z", "-nvL", "-n", "-v", "-x", "--line-numbers", "INPUT", "OUTPUT", "PREROUTING",
    "POSTROUTING", "FORWARD", "NOSUCH", "mychain", "-p", "tcp", "udp", "icmp", "all", "--dport", "--sport",
    "2570", "22", "1:1024", ":", "70000", "-s", "-d", "192.168.122.1", "0/0", "10.0.0.0/8", "!", "-j",
    "DROP", "ACCEPT", "NOTRACK", "CT", "--notrack", "RETURN", "LOG", "REJECT", "-m", "conntrack", "state",
    "--ctstate", "--state", "NEW", "ESTABLISHED", "INVALID", "NEW,ESTABLISHED", "tcp", "-i", "-o", "eth0",
    "1", "2", "0", "-V", "--version", "--append", "--delete", "--list", "-g", "--goto",
]

LINES = [
    "sudo conntrack -L", "conntrack -L unconfirmed", "conntrack -L dying", "conntrack -F", "conntrack -C",
    "conntrack -S", "conntrack -D -p tcp --dport 2570", "conntrack -L -p tcp --dport 22 --state TIME_WAIT",
    "lsmod | grep '^nf_conntrack\\b'", "modinfo nf_conntrack | grep enable_hooks",
    "rmmod nf_conntrack_netlink nf_conntrack", "modprobe nf_conntrack enable_hooks=1", "modprobe nf_tables",
    "iptables-legacy -t filter -A INPUT -p tcp --dport 2570 -j DROP", "iptables -L -n -v",
    "iptables-nft -A INPUT -p tcp --dport 2570 -j DROP", "iptables-legacy -t raw -A PREROUTING -p tcp --dport 22 -j NOTRACK",
    "iptables-legacy -A INPUT -m conntrack --ctstate NEW -j ACCEPT", "iptables-legacy -F",
    "@host nc -w 1 -z 192.168.122.204 2570", "@host nc -v -w 1 -z 192.168.122.204 22", "list-nf-hooks",
    "nft add table ip my_table", "nft add chain ip my_table my_input { type filter hook input priority 0 \\; }",
    "nft add rule ip my_table my_input tcp dport 2570 counter drop", "nft -a list ruleset", "nft flush ruleset",
    "nft add rule ip my_table my_input ct state established accept", "nft list chain ip my_table my_input",
    "sysctl -w net.netfilter.nf_conntrack_max=10", "sysctl net.netfilter.nf_conntrack_count", "dmesg",
    "cat /proc/sys/net/netfilter/nf_conntrack_max", "uname -r", "dmesg | tail -n 2", "lsmod | wc -l",
    "bpftrace -e 'kprobe:nf_ct_delete { @[kstack()] = count(); }'", "trace-cmd start -p function_graph",
    "drgn -e 'print(1)'", "ip -o addr", "@host nc -z 192.168.122.204 22 &", "kill -INT %1", "wait", "jobs",
    "sleep 1", "sleep 0.5", "cat /sys/kernel/debug/tracing/trace",
]


_POOL = st.sampled_from(HOSTILE + NFT_WORDS + XT_WORDS) | st.text(max_size=12)
_OPS = st.sampled_from(["insert", "replace", "delete", "dup", "glue"])


def _mutate(words, data_draw):
    """Insert, replace, delete or duplicate tokens, with vocabulary and hostile fragments."""
    pool = _POOL
    n = data_draw(st.integers(0, 3))
    for _ in range(n):
        op = data_draw(_OPS)
        i = data_draw(st.integers(0, max(len(words) - 1, 0)))
        if op == "insert" or not words:
            words.insert(i, data_draw(pool))
        elif op == "replace":
            words[i] = data_draw(pool)
        elif op == "delete":
            del words[i]
        elif op == "dup":
            words.insert(i, words[i])
        else:  # glue a fragment onto a word
            words[i] = words[i] + data_draw(pool)
    return words


@st.composite
def lab_line(draw):
    kind = draw(st.sampled_from(["known", "nft", "xt", "words"]))
    if kind == "known":
        words = draw(st.sampled_from(LINES)).split(" ")
    elif kind == "nft":
        words = ["nft"] + draw(st.lists(st.sampled_from(NFT_WORDS), max_size=14))
    elif kind == "xt":
        words = [draw(st.sampled_from(["iptables", "iptables-legacy", "iptables-nft"]))] + draw(
            st.lists(st.sampled_from(XT_WORDS), max_size=14))
    else:
        words = draw(st.lists(st.sampled_from(HOSTILE + [w for ln in LINES for w in ln.split()]), max_size=10))
    words = _mutate(words, draw)
    prefix = draw(st.sampled_from(["", "", "sudo ", "@host ", "@host sudo ", "sudo sudo ", "@vm "]))
    return prefix + " ".join(words)


def _check(r, line, last):
    """``last``: the backend's own Output for this line (stdout and stderr apart), if any."""
    if r is None:
        return
    try:
        parsed = parse_line(line)
        tool = parsed.argv[0].rsplit("/", 1)[-1] if parsed else ""
    except LabError:
        tool = ""
    if last and last[0] is not None:
        out = last[0]
        why = problems(r.status, out.stderr if r.status else "", "", tool)
        why += [w for w in problems(0, "", r.output) if w not in why]
    else:  # the lab itself answered (a LabError): its output is the error
        why = problems(r.status, r.output if r.status else "", "")
    assert not why, f"{line!r} -> status {r.status}: {why}\n{r.output}"


class _Labs:
    """One sim lab, replaced every few hundred lines so state cannot grow without bound."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.lab = None
        self.used = 0

        self.last = [None]

    def get(self) -> Lab:
        if self.lab is None or self.used >= 300:
            if self.lab is not None:
                self.lab.close()
            self.lab = Lab("sim", kernel=self.kernel).start()
            self.used = 0
            run, last = self.lab.backend.run, self.last

            def spy(machine, argv):
                last[0] = run(machine, argv)
                return last[0]

            self.lab.backend.run = spy
        self.used += 1
        self.last[0] = None
        return self.lab


@pytest.fixture(scope="module", params=["5.10", "6.18"])
def labs(request):
    labs = _Labs(request.param)
    yield labs
    if labs.lab is not None:
        labs.lab.close()


@settings(max_examples=EXAMPLES["lab"] // 2, **SETTINGS)
@given(lines=st.lists(lab_line(), min_size=1, max_size=8))
def test_lab_run_generated_lines(labs, lines):
    lab = labs.get()
    for line in lines:
        labs.last[0] = None
        try:
            r = lab.run(line)
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{line!r} raised {type(e).__name__}: {e}")
        CASES["Lab.run lines"] += 1
        _check(r, line, labs.last)
    # the lab is still usable after whatever came before
    r = lab.run("conntrack -C")
    assert r.status == 0, r.output


@settings(max_examples=EXAMPLES["raw"], **SETTINGS)
@given(texts=st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80),
                     min_size=1, max_size=8))
def test_raw_text(texts):
    """Arbitrary text: ``parse_line`` only ever raises ``LabError``; ``Lab.run`` never raises."""
    for text in texts:
        try:
            parse_line(text)
        except LabError as e:
            assert str(e) and "\n" not in str(e)
        lab = _RAW.get()
        r = lab.run(text)
        CASES["Lab.run raw text"] += 1
        _check(r, text, _RAW.last)


_RAW = _Labs("5.10")


# A newline inside one argument is covered by test_nft_newline_in_argument.
_NO_NL = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _argv_strategy(words, prog):
    frag = st.sampled_from(words) | st.sampled_from(HOSTILE) | st.text(alphabet=_NO_NL, max_size=10)
    return st.lists(st.lists(frag, max_size=16).map(lambda a: [prog, *a]), min_size=1, max_size=10)


_KERNELS = {}


def _ns(profile):
    k = _KERNELS.get(profile)
    if k is None or _KERNELS.get((profile, "n"), 0) > 400:
        k = _KERNELS[profile] = Kernel(profile)
        _KERNELS[(profile, "n")] = 0
    _KERNELS[(profile, "n")] += 1
    return k.netns("vm")


@settings(max_examples=EXAMPLES["nft"], **SETTINGS)
@given(profile=st.sampled_from(["5.10", "6.1", "6.18"]), argvs=_argv_strategy(NFT_WORDS, "nft"))
def test_nft_parser_direct(profile, argvs):
    ns = _ns(profile)
    for argv in argvs:
        try:
            out = nft_main(ns, list(argv))
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"nft {argv[1:]!r} raised {type(e).__name__}: {e}")
        CASES["nft_main argv"] += 1
        why = problems(out.status, out.stderr, out.stdout if out.status else "")
        assert not why, f"nft {argv[1:]!r} -> {out.status}: {why}\n{out.text}"


@settings(max_examples=EXAMPLES["iptables"], **SETTINGS)
@given(profile=st.sampled_from(["5.10", "6.1", "6.18"]),
       variant=st.sampled_from(["legacy", "nft"]), argvs=_argv_strategy(XT_WORDS, "iptables"))
def test_iptables_parser_direct(profile, variant, argvs):
    ns = _ns(profile)
    for argv in argvs:
        try:
            out = iptables_main(ns, list(argv), variant)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"iptables ({variant}) {argv[1:]!r} raised {type(e).__name__}: {e}")
        CASES["iptables_main argv"] += 1
        why = problems(out.status, out.stderr)
        assert not why, f"iptables ({variant}) {argv[1:]!r} -> {out.status}: {why}\n{out.text}"


def test_nft_newline_in_argument():
    """Real nft: ``nft $'0\\n'`` -> 'Error: syntax error, unexpected number', '0', '^' (3 lines)."""
    ns = _ns("6.18")
    out = nft_main(ns, ["nft", "0\n"])
    assert out.status == 1
    assert out.stderr.count("\n") == 3, out.stderr
