"""function_graph, trace-cmd and tracefs on the simulator; the structured trace behind the text."""
import json

import pytest

from nfteach import Lab
from nfteach.sim.trace import capture
from nfteach.sim.trace.ftrace import graph_duration

SETUP = ["sudo modprobe nf_conntrack enable_hooks=1",
         "sudo iptables-legacy -t filter -A INPUT -p tcp --dport 2570 -j DROP"]
START = "sudo trace-cmd start -p function_graph -g ipv4_conntrack_defrag -g ipv4_conntrack_in"

# this machine's kernel (6.18), `cat /sys/kernel/debug/tracing/trace` through the live backend
LIVE_618_NOP = """# tracer: nop
#
# entries-in-buffer/entries-written: 0/0   #P:2
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""


def test_duration_column_as_the_kernel_prints_it():
    # the article's lines: " 1)   0.573 us    |", " 1) + 15.847 us   |"
    assert graph_duration(573) == "  0.573 us    |  "
    assert graph_duration(15847) == "+ 15.847 us   |  "
    assert graph_duration(1219) == "  1.219 us    |  "
    assert graph_duration(150000) == "! 150.000 us  |  "
    assert graph_duration(None) == "              |  "


def _graph(kernel):
    with Lab("sim", kernel=kernel) as lab:
        for ln in SETUP:
            lab.run(ln)
        assert lab.run(START).output == "  plugin 'function_graph'\n"
        lab.run("@host nc -w 1 -z 192.168.122.204 2570")
        assert lab.run("sudo trace-cmd stop").output == ""
        text = lab.run("sudo cat /sys/kernel/debug/tracing/trace").output
        assert lab.run("sudo cat /sys/kernel/tracing/trace").output == text
        assert lab.run("sudo trace-cmd show").output == text
        lab.run("sudo trace-cmd reset")
        after = lab.run("sudo cat /sys/kernel/tracing/trace").output
    return text, after


def _new_syn_block(text):
    lines = text.splitlines()
    start = None
    for i, ln in enumerate(lines):
        if "ipv4_conntrack_in" in ln and ln.endswith("{"):
            start = i
        if "init_conntrack" in ln and start is not None:
            end = next(j for j in range(start + 1, len(lines)) if lines[j].endswith("|  }"))
            return lines[start:end + 1]
    raise AssertionError("no ipv4_conntrack_in block with init_conntrack")


def test_function_graph_5_10_new_syn_like_the_article():
    text, after = _graph("5.10")
    assert text.startswith("# tracer: function_graph\n#\n# CPU  DURATION                  FUNCTION CALLS\n"
                           "# |     |   |                     |   |   |   |\n")
    block = "\n".join(_new_syn_block(text))
    for piece in ("|  ipv4_conntrack_in [nf_conntrack]() {", "|    nf_conntrack_in [nf_conntrack]() {",
                  "|      get_l4proto [nf_conntrack]();", "|      nf_ct_get_tuple [nf_conntrack]() {",
                  "|        nf_ct_get_tuple_ports [nf_conntrack]();", "|      hash_conntrack_raw [nf_conntrack]();",
                  "|      __nf_conntrack_find_get [nf_conntrack]() {",
                  "|        rcu_read_unlock_strict();",  # non-preemptible RCU: rcu_read_lock is no call
                  "|      init_conntrack.constprop.0 [nf_conntrack]() {",
                  "|        nf_ct_invert_tuple [nf_conntrack]();", "|        __nf_conntrack_alloc [nf_conntrack]() {",
                  "|          kmem_cache_alloc() {", "|        _raw_spin_lock();",  # the inlined unconfirmed-list add
                  "|        tcp_new [nf_conntrack]() {"):
        assert piece in block, piece
    assert "resolve_normal_ct" not in text  # inlined
    assert "ipv4_conntrack_defrag [nf_defrag_ipv4]();" in text
    assert " => " in text  # task switch separators (nc and the session)
    assert after.startswith("# tracer: nop\n")
    assert "irqs-off/BH-disabled" not in after  # 5.10's header


def test_function_graph_6_1_differs_as_measured():
    text, after = _graph("6.1")
    block = "\n".join(_new_syn_block(text))
    assert "nf_ct_get_tuple [nf_conntrack]();" in block  # nf_ct_get_tuple_ports inlined on 6.1
    assert "nf_ct_get_tuple_ports" not in text
    assert "nf_ct_add_to_unconfirmed_list" not in text  # no unconfirmed list
    assert "_raw_spin_lock()" not in text and "__nf_ct_try_assign_helper" not in text
    assert "|        __rcu_read_lock();" in block  # preemptible RCU: both are calls
    assert "|        nf_ct_ecache_ext_add [nf_conntrack]();" in block  # no listener: no extension
    assert "irqs-off/BH-disabled" in after


def test_function_graph_is_deterministic():
    assert _graph("5.10")[0] == _graph("5.10")[0]


def test_6_18_has_no_function_tracer_and_prints_the_live_nop_trace():
    with Lab("sim", kernel="6.18") as lab:
        r = lab.run(START)
        assert r.status == 2 and r.output.startswith("nfteach: trace-cmd:") and "--backend vm" in r.output
        assert r.output.count("\n") == 1
        assert lab.run("sudo cat /sys/kernel/debug/tracing/trace").output == LIVE_618_NOP


def test_trace_cmd_errors():
    with Lab("sim", kernel="5.10") as lab:
        r = lab.run("sudo trace-cmd start -p function_graph -g no_such_function")
        assert r.status == 2 and "no_such_function" in r.output
        r = lab.run("sudo trace-cmd record -p function")
        assert r.status == 2 and r.output.startswith("nfteach: trace-cmd record")


@pytest.mark.parametrize("kernel", ["5.10", "6.1"])
def test_capture_gives_the_structured_trace(kernel):
    with Lab("sim", kernel=kernel) as lab:
        lab.run(SETUP[0])
        r = capture(lab, "@host nc -w 1 -z 192.168.122.204 2570", ["ipv4_conntrack_in"])
    fns = r.functions()
    assert fns[0] == "ipv4_conntrack_in" and "__nf_conntrack_alloc" in fns
    assert all(e.cpu == 0 for e in r.events)
    leaf = next(e for e in r.events if e.function == "nf_ct_invert_tuple")
    assert leaf.kind == "leaf" and leaf.duration_ns > 0 and leaf.module == "nf_conntrack"
    data = json.loads(r.to_json())
    assert data["events"][0]["function"] == "ipv4_conntrack_in"
    assert r.text().startswith("# tracer: function_graph")
    # capture leaves the lab's tracefs alone
    with Lab("sim", kernel=kernel) as lab:
        assert lab.run("sudo cat /sys/kernel/tracing/trace").output.startswith("# tracer: nop")


def test_capture_needs_sim():
    class Fake:
        backend = type("B", (), {"name": "vm"})()
    with pytest.raises(ValueError):
        capture(Fake(), "true")
