"""The article's experiment on this machine's kernel, step by step, with what each step proves."""
import re
from pathlib import Path

import pytest

from nfteach.live.netlink_ct import conntrack_l_key
from nfteach.model import notes

pytestmark = pytest.mark.live

ARTICLE = Path(__file__).resolve().parents[2] / "nfteach" / "scenarios" / "article.lab"


def entries(output):
    return [ln for ln in output.splitlines() if conntrack_l_key(ln)]


def test_article_scenario(lab):
    lines = [ln for ln in ARTICLE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    res = [lab.run(ln) for ln in lines]
    by = list(zip(lines, res))

    # conntrack is off in a fresh namespace: the session is not tracked
    assert res[0].output == "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n" or \
        "0 flow entries have been shown." in res[0].output
    # the first emulated command prints the note, once
    first_emulated = next(r for ln, r in by if "rmmod" in ln or "modprobe" in ln)
    assert first_emulated.output == notes.BUILTIN_MODPROBE_NOTE + "\n"
    assert sum(notes.BUILTIN_MODPROBE_NOTE in r.output for r in res) == 1

    i_mod = lines.index("sudo modprobe nf_conntrack enable_hooks=1")
    ct = res[i_mod + 1].output
    e = entries(ct)
    assert len(e) == 1 and "1 flow entries have been shown." in ct
    sport = lab.backend.session.sport
    assert re.match(
        rf"tcp +6 43199\d ESTABLISHED src=192\.168\.122\.1 dst=192\.168\.122\.204 sport={sport} dport=22 "
        rf"src=192\.168\.122\.204 dst=192\.168\.122\.1 sport=22 dport={sport} \[ASSURED\] mark=0 use=1$", e[0]), e

    # the SYN dropped by iptables-legacy filter INPUT leaves no entry
    i_nc1 = lines.index("@host nc -w 1 -z 192.168.122.204 2570")
    assert res[i_nc1].status == 1
    assert not [x for x in entries(res[i_nc1 + 1].output) if "dport=2570" in x]

    # a drop at priority 2147483647, created before conntrack is switched on, runs
    # before ipv4_confirm: the entry survives, SYN_SENT [UNREPLIED]
    i_nc2 = len(lines) - 1 - lines[::-1].index("@host nc -w 1 -z 192.168.122.204 2570")
    e = [x for x in entries(res[i_nc2 + 1].output) if "dport=2570" in x]
    assert len(e) == 1, res[i_nc2 + 1].output
    assert re.match(r"tcp +6 11\d SYN_SENT src=192\.168\.122\.1 dst=192\.168\.122\.204 sport=\d+ dport=2570 "
                    r"\[UNREPLIED\] src=192\.168\.122\.204 dst=192\.168\.122\.1 sport=2570 dport=\d+ mark=0 use=1$",
                    e[0]), e
    # and the rule counted the SYN: 1 packet of 60 bytes (2 if the 1 s retransmission won the race)
    m = re.search(r"tcp dport 2570 counter packets (\d+) bytes (\d+) drop", res[-1].output)
    assert m and m.group(1) in ("1", "2") and int(m.group(2)) == 60 * int(m.group(1)), res[-1].output

    # list-nf-hooks: honest refusal naming the vm backend on this kernel
    hooks = res[lines.index("sudo list-nf-hooks")]
    if not lab.backend.caps().get("nft_list_hooks"):
        assert hooks.status == 2 and "--backend vm" in hooks.output and hooks.output.count("\n") == 1

    # netlink agrees with conntrack -L, entry for entry
    ct_l = lab.run("conntrack -L").output
    via_nl = sorted(x.line_key() for x in lab.backend.conntrack_entries())
    assert via_nl == sorted(conntrack_l_key(x) for x in entries(ct_l))
    est = [x for x in lab.backend.conntrack_entries() if x.orig.dport == 22]
    assert est and est[0].state == "ESTABLISHED" and est[0].assured and est[0].timeout > 431000


def test_conntrack_off_until_enabled_and_off_again(lab):
    assert "0 flow entries" in lab.run("conntrack -L").output
    lab.run("modprobe nf_conntrack")  # without enable_hooks: a no-op
    assert "0 flow entries" in lab.run("conntrack -L").output
    assert lab.run("modprobe nf_conntrack enable_hooks=1").status == 0
    assert "1 flow entries" in lab.run("conntrack -L").output
    assert "table inet nfteach_ct" in lab.run("@host nft list tables").output  # every lab namespace
    lab.run("rmmod nf_conntrack_netlink nf_conntrack")
    assert "nfteach_ct" not in lab.run("nft list tables").output
    lab.run("conntrack -F")
    lab.run("@host nc -w 1 -z 192.168.122.204 22")
    assert "0 flow entries" in lab.run("conntrack -L").output


def test_closed_port_rst_leaves_no_entry_listener_time_wait(lab):
    lab.run("modprobe nf_conntrack enable_hooks=1")
    assert lab.run("@host nc -w 1 -z 192.168.122.204 2570").status == 1
    assert "0 flow entries" in lab.run("conntrack -L -p tcp --dport 2570").output
    assert lab.run("@host nc -w 1 -z 192.168.122.204 22").status == 0
    out = lab.run("conntrack -L -p tcp --state TIME_WAIT").output
    assert re.search(r"TIME_WAIT src=192\.168\.122\.1 .* dport=22 .*\[ASSURED\]", out), out
    nl = [x for x in lab.backend.conntrack_entries() if x.state == "TIME_WAIT"]
    assert len(nl) == 1 and nl[0].assured


def test_background_job_and_kill(lab):
    lab.run("modprobe nf_conntrack enable_hooks=1")
    assert lab.run("nc -l 192.168.122.204 5555 &").status == 0
    lab.run("sleep 0.3")
    assert lab.run("@host nc -w 1 -z 192.168.122.204 5555").status == 0
    r = lab.run("kill -INT %1")
    assert r is not None
    assert not lab.jobs


def test_bpftrace_tracepoint_file_and_refusals(lab):
    lab.write_file("/vagrant/tools/drops.bt", "tracepoint:skb:kfree_skb { @[args->reason] = count(); } "
                                              "interval:ms:500 { exit(); }\n")
    r = lab.run("bpftrace /vagrant/tools/drops.bt")
    assert "Attaching" in r.output, r.output
    caps = lab.backend.caps()
    for cmd in ("drgn", "trace-cmd"):
        r = lab.run(cmd)
        assert r.status == 2 and "--backend vm" in r.output and r.output.count("\n") == 1
    if not caps.get("kcore"):
        assert "/proc/kcore" in lab.run("drgn").output


def test_blocked_session_does_not_hang_the_lab(lab):
    import time

    lab.run("iptables-legacy -A INPUT -p tcp --dport 22 -j DROP")
    t0 = time.monotonic()
    lab.run("conntrack -L")  # this keystroke waits (up to 15 s), then gives up
    lab.run("conntrack -L")
    t1 = time.monotonic()
    lab.run("conntrack -L")  # once failed, only 1 s per command
    assert time.monotonic() - t1 < 5
    assert not lab.backend.session.healthy
    lab.run("iptables-legacy -F INPUT")
    lab.run("conntrack -L")  # retransmission delivers the bytes; the session recovers
    for _ in range(5):
        if lab.backend.keystroke():
            break
        time.sleep(1)
    assert lab.backend.session.healthy
    assert t1 - t0 < 40
