"""Learner text never reaches a shell, and nothing leaves the lab's namespaces."""
import os
import uuid

import pytest

pytestmark = pytest.mark.live


@pytest.fixture
def marker(tmp_path):
    return f"/tmp/nfteach-pwned-{uuid.uuid4().hex}"


def test_hostile_lines(lab, marker):
    lines = [
        f"@host nc -z 192.168.122.204 '2570; touch {marker}'",
        f"@host nc -z 192.168.122.204 \"2570 && touch {marker}\"",
        f"nft add table ip 'x; touch {marker}'",
        f"conntrack -L $(touch {marker})",
        f"conntrack -L `touch {marker}`",
        f"conntrack -L; touch {marker}",
        f"conntrack -L | sh -c 'touch {marker}'",
        f"iptables-legacy -L -n > {marker}",
    ]
    for line in lines:
        r = lab.run(line)
        assert r is not None
        assert "Traceback" not in r.output
    assert not os.path.exists(marker)


@pytest.mark.parametrize(
    "argv, token",
    [
        (["sh", "-c", "touch {m}"], "sh"),
        (["touch", "{m}"], "touch"),
        (["/bin/touch", "{m}"], "/bin/touch"),
        (["ip", "netns", "exec", "x", "touch", "{m}"], "netns"),
        (["ip", "net", "exec", "x", "touch", "{m}"], "net"),
        (["ip", "-n", "x", "link"], "-n"),
        (["ip", "-b", "{m}"], "-b"),
        (["ip", "link", "set", "eth0", "netns", "1"], "netns"),
        (["iptables", "--modprobe={m}", "-L"], "--modprobe"),
        (["bpftrace", "--unsafe", "-e", 'BEGIN { system("touch {m}"); }'], "--unsafe"),
        (["bpftrace", "-c", "touch {m}", "-e", "BEGIN { exit(); }"], "-c"),
        (["sysctl", "-w", "kernel.core_pattern=|/bin/touch {m}"], "kernel.core_pattern"),
        (["sysctl", "-p", "{m}"], "-p"),
        (["cat", "/etc/shadow"], "/etc/shadow"),
        (["cat", "/sys/kernel/tracing/../../../etc/shadow"], "shadow"),
    ],
)
def test_refused_argv(lab, marker, argv, token):
    argv = [a.replace("{m}", marker) for a in argv]
    out = lab.backend.run("vm", argv)
    assert out.status in (2, 127)  # 127: not a lab command at all
    assert out.stderr.startswith("nfteach: ") and out.stderr.count("\n") == 1
    assert token in out.stderr
    assert not os.path.exists(marker)


def test_metacharacters_reach_the_tool_verbatim(lab, marker):
    for arg in (f"$(touch {marker})", f"`touch {marker}`", f"2570; touch {marker}", "*", "~root"):
        out = lab.backend.run("host", ["nc", "-w", "1", "-z", "192.168.122.204", arg])
        assert out.status != 0
        assert "Traceback" not in out.text
    assert not os.path.exists(marker)


def test_unknown_command_is_one_line(lab):
    from nfteach.model import notes

    out = lab.backend.run("vm", ["frobnicate", "--now"])
    assert out.status == 127
    assert out.stderr == notes.unknown_command("frobnicate") + "\n"
    r = lab.run("frobnicate --now")  # the lab answers the same, without the backend
    assert r.output == out.stderr


def test_dmesg_clear_refused(lab):
    out = lab.backend.run("vm", ["dmesg", "-C"])
    assert out.status == 2 and out.stderr.startswith("nfteach: dmesg")
