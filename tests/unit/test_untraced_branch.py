"""Tracing off takes a frameless copy of each modelled function (``tracer.untraced_branch``):
the model must end in the same state whether or not a listener is attached, and the copy
must really be the one that runs when nobody listens."""
from __future__ import annotations

import pytest

from nfteach import Lab
from nfteach.sim.kernel.conntrack import Conntrack
from nfteach.sim.kernel.ct_confirm import CtConfirm
from nfteach.sim.kernel.skb import ACK, SYN, SYN_OPTIONS_LEN, Skb
from nfteach.sim.kernel.stack import Stack

SETUP = [
    "sudo modprobe nf_conntrack enable_hooks=1",
    "sudo nft add table ip filter",
    "sudo nft add chain ip filter input { type filter hook input priority 0 \\; }",
    "sudo nft add rule ip filter input tcp dport 2570 counter drop",
    "sudo nft add rule ip filter input ct state established counter accept",
]
AFTER = ["sudo conntrack -L", "sudo conntrack -S", "sudo conntrack -C", "sudo nft list ruleset", "nc -z -w 1 vm 22"]


def _run(kernel: str, listen: bool):
    lab = Lab("sim", kernel=kernel).start()
    try:
        out = [lab.run(c).output for c in SETUP]
        k = lab.backend.k
        events = []
        if listen:
            k.tracer.listeners.append(events.append)
        vm = k.netns("vm")
        for j in range(40):  # new tuples to a closed port, to a dropped port, an ACK without entry
            dport = (2570, 2571, 22)[j % 3]
            flags = ACK if j % 7 == 0 else SYN
            k.stack.ip_rcv(vm, Skb(f"10.0.0.{j}", "192.168.122.204", 1024 + j, dport, flags, seq=j * 7919,
                                   options_len=SYN_OPTIONS_LEN))
        k.settle(0.01)
        k.tracer.listeners.clear()
        out += [lab.run(c).output for c in AFTER]
        return out, len(events)
    finally:
        lab.close()


@pytest.mark.parametrize("kernel", ["5.10", "6.1", "6.18"])
def test_same_model_with_and_without_a_listener(kernel):
    traced, n_events = _run(kernel, listen=True)
    untraced, none = _run(kernel, listen=False)
    assert n_events > 40 * 20 and none == 0
    assert traced == untraced


def test_frameless_copies_are_installed():
    assert Conntrack.trace_only_methods == {"_pernet", "_ext_add"}
    assert CtConfirm.trace_only_methods == {"_double_lock", "_double_unlock"}
    for fn in (Stack.ip_rcv, Stack.nf_hook, Conntrack.nf_conntrack_in, Conntrack.init_conntrack,
               Conntrack.nf_conntrack_confirm):
        assert "listeners" in fn.__code__.co_names, fn.__qualname__
        assert fn.__code__.co_filename.endswith((".py",)) and fn.__code__.co_firstlineno > 1


def test_rewrite_cache_round_trip(tmp_path, monkeypatch):
    import inspect

    import nfteach.sim.kernel.conntrack as module
    from nfteach.sim.kernel import tracer

    src = inspect.getsource(module)
    monkeypatch.setattr(tracer, "_cache_path", lambda cls, mod: str(tmp_path / "cache.bin"))
    assert tracer._cached(module.Conntrack, module, src) is None
    built = tracer._build(module.Conntrack, module, src)
    tracer._store(module.Conntrack, module, src, built)
    assert tracer._cached(module.Conntrack, module, src) == built
    assert tracer._cached(module.Conntrack, module, src + "\n") is None  # another source: rebuilt
