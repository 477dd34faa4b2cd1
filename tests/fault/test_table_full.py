"""A full conntrack table on the simulator behaves as the kernel's does.

``__nf_conntrack_alloc`` over ``nf_conntrack_max`` first tries ``early_drop``: up to 8
buckets (NF_CT_EVICTION_RANGE) from the new tuple's bucket, evicting one confirmed entry
that is not ASSURED (``early_drop`` counter). Only when there is none does it print
"nf_conntrack: table full, dropping packet" and drop the packet (``drop`` counter).

Everything goes through lab commands, on the host machine (the client's namespace is
tracked too once enable_hooks=1 is on): the vm drops SYNs to 2570, so each ``nc`` leaves
an UNREPLIED (not ASSURED) entry on the host, while the tcp/22 session's entry is ASSURED.

The one thing no lab command can do is shrink the hash table: neither
``modprobe nf_conntrack hashsize=N`` nor ``sysctl -w net.netfilter.nf_conntrack_buckets=N``
is modelled, so the test sets the model's ``htable_size`` to 8 (all buckets within the
8-bucket scan: early drop becomes deterministic).
"""
from __future__ import annotations

import re

import pytest

from nfteach import Lab

NC = "@host nc -w 1 -z 192.168.122.204 2570"


def _stats(lab, machine="@host "):
    line = lab.run(f"{machine}conntrack -S").output.splitlines()[0]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def _entries(lab):
    return [ln for ln in lab.run("@host conntrack -L").output.splitlines() if ln.startswith("tcp")]


@pytest.fixture(params=["5.10", "6.1", "6.18"])
def lab(request):
    with Lab("sim", kernel=request.param) as lab:
        assert lab.run("sudo modprobe nf_conntrack enable_hooks=1").status == 0
        lab.backend.k.conntrack.htable_size = 8  # see the module docstring
        assert lab.run("sudo iptables-legacy -A INPUT -p tcp --dport 2570 -j DROP").status == 0
        yield lab


def test_early_drop_evicts_unassured_first(lab):
    ents = _entries(lab)
    assert len(ents) == 1 and "[ASSURED]" in ents[0] and "dport=22 " in ents[0]  # the session
    assert lab.run("sudo sysctl -w net.netfilter.nf_conntrack_max=3").status == 0
    for _ in range(2):
        lab.run(NC)
    ents = _entries(lab)
    assert len(ents) == 3, ents
    assert sum("[UNREPLIED]" in e for e in ents) == 2
    before = _stats(lab)
    lab.run(NC)  # a 4th entry: early drop evicts one UNREPLIED entry, the new SYN goes out
    after = _stats(lab)
    assert after["early_drop"] - before["early_drop"] == 1
    assert after["drop"] == before["drop"]
    ents = _entries(lab)
    assert len(ents) == 3, ents
    assert any("[ASSURED]" in e and "dport=22 " in e for e in ents), "the ASSURED session was evicted"
    assert "table full" not in lab.run("dmesg").output


def test_table_full_drops_the_syn_and_logs(lab):
    # only ASSURED entries left (the session), and the table is full with it
    lab.run("@host conntrack -D -p tcp --dport 2570")
    assert len(_entries(lab)) == 1
    assert lab.run("sudo sysctl -w net.netfilter.nf_conntrack_max=1").status == 0
    before, vm_before = _stats(lab), _drop_counter(lab)
    r = lab.run("@host nc -v -w 1 -z 192.168.122.204 2570")
    assert r.status == 1 and "timed out" in r.output
    after = _stats(lab)
    assert after["early_drop"] == before["early_drop"]  # nothing could be evicted
    assert after["drop"] - before["drop"] >= 1  # each SYN (and retransmission) dropped
    assert _drop_counter(lab) == vm_before, "a SYN got past the host's full table"
    dmesg = lab.run("dmesg").output
    want = ("nf_conntrack: table full in netns" if lab.kernel == "6.18" else "nf_conntrack: table full, dropping packet")
    assert want in dmesg, dmesg
    assert lab.run("dmesg | grep -c 'table full'").output.strip() != "0"
    # the session still works and is still tracked
    ents = _entries(lab)
    assert len(ents) == 1 and "[ASSURED]" in ents[0]
    # room again: the SYN goes out and reaches the vm's DROP rule
    assert lab.run("sudo sysctl -w net.netfilter.nf_conntrack_max=10").status == 0
    lab.run(NC)
    assert _drop_counter(lab) > vm_before
    assert len(_entries(lab)) == 2


def _drop_counter(lab) -> int:
    out = lab.run("sudo iptables-legacy -L INPUT -n -v -x").output
    for line in out.splitlines():
        if "dpt:2570" in line:
            return int(line.split()[0])
    raise AssertionError(out)
