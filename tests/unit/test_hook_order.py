"""nf_hook_entries_grow() ordering: a reference implementation drives a property test."""
from hypothesis import given, settings
from hypothesis import strategies as st

from nfteach.sim.kernel.netfilter import INT_MAX, INT_MIN, LOCAL_IN, HookError, HookOps, NetnsNf


def reference_grow(old, reg):
    """Literal transcription of the kernel's merge loop (net/netfilter/core.c)."""
    new, i, inserted = [], 0, False
    while i < len(old):
        if inserted or reg.priority > old[i].priority:
            new.append(old[i])
            i += 1
        else:
            new.append(reg)
            inserted = True
    if not inserted:
        new.append(reg)
    return new


prios = st.one_of(st.sampled_from([INT_MIN, -400, -300, -200, -150, 0, 50, 100, INT_MAX - 1, INT_MAX]),
                  st.integers(INT_MIN, INT_MAX))
ops_seq = st.lists(st.tuples(st.booleans(), prios, st.integers(0, 30)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops_seq)
def test_model_matches_reference(seq):
    nf = NetnsNf()
    ref = []
    live = []
    for n, (register, prio, pick) in enumerate(seq):
        if register or not live:
            o = HookOps("ipv4", LOCAL_IN, prio, f"fn{n}")
            nf.register(o)
            ref = reference_grow(ref, o)
            live.append(o)
        else:
            o = live.pop(pick % len(live))
            nf.unregister(o)
            ref = [x for x in ref if x is not o]
        got = nf.entries("ipv4", LOCAL_IN)
        assert [id(x) for x in got] == [id(x) for x in ref]
        assert [x.priority for x in got] == sorted(x.priority for x in got)


def test_new_hook_goes_before_equal_priority():
    nf = NetnsNf()
    nf.register(HookOps("ipv4", LOCAL_IN, INT_MAX, "nft_do_chain_ipv4"))
    nf.register(HookOps("ipv4", LOCAL_IN, INT_MAX, "ipv4_confirm"))
    assert [o.hook for o in nf.entries("ipv4", LOCAL_IN)] == ["ipv4_confirm", "nft_do_chain_ipv4"]


def test_priority_outside_int32_is_refused():
    for bad in (INT_MAX + 1, INT_MIN - 1):
        try:
            HookOps("ipv4", LOCAL_IN, bad, "x")
        except HookError as e:
            assert "int32" in str(e)
        else:
            raise AssertionError("accepted a priority outside int32")
