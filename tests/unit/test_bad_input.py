"""Malformed and unsupported commands: an error that names the token, never a traceback,
and the lab keeps working afterwards."""
import pytest

from nfteach import Lab

CASES = [
    # (command line, a token the error must name)
    ("echo hi; rm -rf /", ";"),
    ("conntrack -L && id", "&&"),
    ("conntrack -L > /tmp/x", ">"),
    ("nc -z `id` 22", "`"),
    ("nc -z $(id) 22", "$("),
    ("lsmod | sh", "sh"),
    ("@root conntrack -L", "@root"),
    ("conntrack -L 'unterminated", "'"),
    ("frobnicate --now", "frobnicate"),
    ("python3 -c 'import os'", "python3"),
    ("conntrack -X", "-X"),
    ("conntrack -L flows", "flows"),
    ("conntrack -L -p", "-p"),
    ("conntrack -E", "-E"),
    ("@host nc -z -w 1 192.168.122.204 70000", "70000"),
    ("@host nc -z -w 1 192.168.122.204 http-alt", "http-alt"),
    ("@host nc -z -w x 192.168.122.204 22", "x"),
    ("@host nc -z -w 1 1.2.3.4.5 22", "1.2.3.4.5"),
    ("@host nc 192.168.122.204 22", "nc"),
    ("@host nc -z -l 22", "-l"),
    ("sysctl net.netfilter.nope", "nope"),
    ("sysctl -x net.netfilter.nf_conntrack_max", "-x"),
    ("modprobe nf_nope", "nf_nope"),
    ("rmmod nf_nope", "nf_nope"),
    ("modprobe --frob nf_conntrack", "--frob"),
    ("modinfo nf_nope", "nf_nope"),
    ("list-nf-hooks --all", "--all"),
    ("kill -INT %7", "%7"),
    ("kill -FOO %1", "-FOO"),
    ("sleep forever", "forever"),
    ("lsmod | grep -P x", "-P"),
    ("lsmod | head -n x", "x"),
    ("nft add chain ip t c { type filter hook inptu priority 0 \\; }", "inptu"),
    ("nft add chain ip t c { type filter hook input priority -2147483649 \\; }", "-2147483649"),
    ("nft add table ip6x t", "ip6x"),
    ("nft add rule ip nosuchtable c tcp dport 22 drop", "nosuchtable"),
    ("nft frobnicate ruleset", "frobnicate"),
    ("iptables-legacy -t nosuch -L", "nosuch"),
    ("iptables-legacy -A INPUT -p tcp --dport 70000 -j DROP", "70000"),
    ("iptables-legacy -A INPUT -p tcp --dport '2570; rm -rf /' -j DROP", "2570; rm -rf /"),
    ("iptables-legacy -t raw -A PREROUTING -j FROB", "FROB"),
    ("iptables-legacy -A INPUT -p tcp --dport 22 -j FROB", "FROB"),
    ("iptables-nft -Z --bogus", "--bogus"),
]


@pytest.fixture(scope="module")
def lab():
    with Lab("sim", kernel="5.10") as lab:
        yield lab


@pytest.mark.parametrize("line,token", CASES, ids=[c[0][:40] for c in CASES])
def test_bad_input_names_the_token(lab, line, token):
    r = lab.run(line)
    assert r.status != 0, r
    assert r.output.strip(), r
    assert "Traceback" not in r.output and "internal error" not in r.output, r
    assert token.lower() in r.output.lower(), r
    # the lab is still usable
    ok = lab.run("conntrack -L")
    assert ok.status == 0 and "flow entries have been shown" in ok.output


def test_at_least_30_cases():
    assert len(CASES) >= 30
