import pytest

from nfteach.cmdline import parse_line
from nfteach.filters import apply
from nfteach.model.errors import LabError


def test_host_sudo_and_escaped_semicolon():
    p = parse_line("@host sudo nft add chain ip t c { type filter hook input priority 0 \\; }")
    assert p.machine == "host"
    assert p.argv[:2] == ["nft", "add"] and ";" in p.argv


def test_pipe_and_background():
    p = parse_line("lsmod | grep '^nf_conntrack\\b'")
    assert p.argv == ["lsmod"] and p.filters == [["grep", "^nf_conntrack\\b"]]
    assert parse_line("bpftrace x.bt &").background


@pytest.mark.parametrize("line,token", [
    ("echo hi; rm -rf /", ";"), ("ls && id", "&&"), ("cat /etc/passwd > x", ">"),
    ("nc -z `id` 22", "`"), ("nc -z $(id) 22", "$("), ("a | sh", "sh"), ("@root ls", "@root"),
    ("nc 'unterminated", "'"),
])
def test_refused_shell_syntax(line, token):
    with pytest.raises(LabError) as e:
        parse_line(line)
    assert e.value.token == token
    assert "\n" not in str(e.value)


def test_filters():
    text = "nf_conntrack 1\nnf_conntrack_netlink 2\nx 3\n"
    assert apply(["grep", "^nf_conntrack\\b"], text) == ("nf_conntrack 1\n", 0)
    assert apply(["grep", "-c", "nf"], text) == ("2\n", 0)
    assert apply(["grep", "zzz"], text) == ("", 1)
    assert apply(["head", "-n", "1"], text)[0] == "nf_conntrack 1\n"
    assert apply(["tail", "-1"], text)[0] == "x 3\n"
    assert apply(["wc", "-l"], text)[0] == "3\n"
