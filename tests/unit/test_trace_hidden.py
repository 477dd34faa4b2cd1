"""``[trace.hidden]``: what the simulator's traces leave out is what ``nfteach vm derive`` read
from the kernel build (``profiles/K.derived.toml``), and nothing it says is hidden shows up.

The script runs every path of ``hidden.MODEL_PATHS`` (listener, closed port: the RST kills the
entry, dropped port, flush) under function_graph on the hooks, the receive and the transmit.
"""
import sys

import pytest

from nfteach import Lab
from nfteach.fidelity import hidden
from nfteach.model.profile import PROFILE_DIR, load_profile
from nfteach.sim.trace.kdata import KData

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DERIVED = sorted(p.name.removesuffix(".derived.toml") for p in PROFILE_DIR.glob("*.derived.toml"))
GRAPH = "sudo trace-cmd start -p function_graph -g nf_hook_slow -g tcp_v4_rcv -g __dev_queue_xmit"


def _derived_hidden(kernel):
    return tomllib.loads((PROFILE_DIR / f"{kernel}.derived.toml").read_text())["trace"]["hidden"]


def _graph(kernel):
    with Lab("sim", kernel=kernel) as lab:
        assert lab.run(GRAPH).status == 0
        lab.script(hidden.MODEL_PATHS)
        lab.run("sudo trace-cmd stop")
        return lab.run("sudo cat /sys/kernel/debug/tracing/trace").output


@pytest.mark.parametrize("kernel", DERIVED)
def test_the_model_reads_hidden_from_the_derived_file_only(kernel):
    """One home: the hand-written profile has no [trace.hidden], the derived one gives each a why."""
    hand = tomllib.loads((PROFILE_DIR / f"{kernel}.toml").read_text())
    assert "hidden" not in hand.get("trace", {}), f"{kernel}.toml types [trace.hidden]; derive it"
    h = _derived_hidden(kernel)
    assert h["functions"] and set(h["functions"]) == set(h["why"])
    kd = KData(load_profile(kernel))
    assert kd.hidden | {f"{a}>{b}" for a, b in kd.hidden_calls} == set(h["functions"])


@pytest.mark.parametrize("kernel", DERIVED)
def test_sim_trace_never_shows_a_hidden_function(kernel):
    h = _derived_hidden(kernel)
    kd = KData(load_profile(kernel))
    text = _graph(kernel)
    calls = hidden.graph_calls(text)
    assert ("nf_conntrack_in", kd.symbol("nf_conntrack_tcp_packet")) in calls or \
        ("nf_conntrack_in", "nf_conntrack_tcp_packet") in calls, text[:2000]
    shown = {fn for _c, fn in calls}
    for f in h["functions"]:
        if ">" in f:  # hidden at that call only: never right under that caller
            caller, callee = f.split(">")
            sym_c, sym_f = kd.symbols.get(caller, caller), kd.symbols.get(callee, callee)
            assert (sym_c, sym_f) not in calls, f"{kernel}: {f} shows ({h['why'][f]})"
        else:
            assert kd.symbols.get(f, f) not in shown, f"{kernel}: {f} shows ({h['why'][f]})"


@pytest.mark.parametrize("kernel", DERIVED)
def test_sim_kill_of_an_unanswered_entry_is_in_tcp_packet(kernel):
    """The closed port's RST: nf_conntrack_tcp_packet -> nf_ct_kill_acct -> nf_ct_delete, as
    function_graph shows it on the vm's kernels (nf_ct_acct_add inside it unless inlined there)."""
    calls = hidden.graph_calls(_graph(kernel))
    assert ("nf_conntrack_tcp_packet", "nf_ct_kill_acct") in calls
    # 5.10's nf_ct_kill_acct calls the clone nf_ct_delete.part.0 ([trace.symbols_at], derived)
    at = load_profile(kernel).extra["trace"].get("symbols_at", {})
    assert ("nf_ct_kill_acct", at.get("nf_ct_kill_acct>nf_ct_delete", "nf_ct_delete")) in calls
    derived = set(_derived_hidden(kernel)["functions"])
    assert (("nf_ct_kill_acct", "nf_ct_acct_add") in calls) == ("nf_ct_kill_acct>nf_ct_acct_add" not in derived)


def test_a_hidden_call_leaves_its_callees_to_the_caller():
    """``"caller>callee"``: the callee's frame goes at that call only; a stack skips it there."""
    kd = KData(load_profile(DERIVED[0]))
    kd.hidden_calls = {("nf_ct_kill_acct", "nf_ct_acct_add")}
    assert kd.hidden_at(("nf_conntrack_tcp_packet", "nf_ct_kill_acct", "nf_ct_acct_add"))
    assert not kd.hidden_at(("nf_conntrack_tcp_packet", "__nf_ct_refresh_acct", "nf_ct_acct_add"))
    kd.offsets = {"nf_ct_kill_acct>nf_ct_delete": 7}
    frames = kd.frames(("nf_ct_kill_acct", "nf_ct_acct_add", "nf_ct_delete"), "nf_ct_delete+1", None)
    assert frames[:2] == ("nf_ct_delete+1", "nf_ct_kill_acct+7")


def test_graph_calls_reads_nesting_from_the_indent():
    # function_graph lines as vm 6.12 printed them for the RST of a closed port
    text = """ 1)               |      nf_conntrack_tcp_packet [nf_conntrack]() {
 1)   1.247 us    |        _raw_spin_lock_bh();
 1)               |        nf_ct_kill_acct [nf_conntrack]() {
 1)               |          nf_ct_delete [nf_conntrack]() {
 1)   9.530 us    |            nf_ct_helper_destroy [nf_conntrack]();
 1) ! 245.639 us  |          }
 1) ! 260.495 us  |        }
 1)   1.040 us    |        nf_ct_seq_offset [nf_conntrack]();
 1) ! 385.914 us  |      }
"""
    assert hidden.graph_calls(text) == {
        ("", "nf_conntrack_tcp_packet"), ("nf_conntrack_tcp_packet", "_raw_spin_lock_bh"),
        ("nf_conntrack_tcp_packet", "nf_ct_kill_acct"), ("nf_ct_kill_acct", "nf_ct_delete"),
        ("nf_ct_delete", "nf_ct_helper_destroy"), ("nf_conntrack_tcp_packet", "nf_ct_seq_offset")}
