"""nfteach.fidelity.graph: two function_graph traces compared packet by packet, with the noise
only a real guest has left out -- and a real difference still found."""
from nfteach.fidelity.compare import compare
from nfteach.fidelity.graph import call_tree, packets, same_graph
from nfteach.model.results import CommandResult

HEAD = "# tracer: function_graph\n#\n# CPU  DURATION                  FUNCTION CALLS\n# |     |   |                     |   |   |   |\n"


def line(name, depth, kind="leaf", cpu=0):
    dur = "  1.000 us    " if kind == "leaf" else "              "
    text = {"leaf": f"{name}();", "open": f"{name}() {{", "close": "}"}[kind]
    return f" {cpu}) {dur}|  {'  ' * depth}{text}\n"


def new_entry(depth=0):
    return (line("nf_confirm [nf_conntrack]", depth, "open") + line("__nf_conntrack_confirm [nf_conntrack]", depth + 1, "open")
            + line("hash_conntrack_raw [nf_conntrack]", depth + 2) + line("", depth + 1, "close") + line("", depth, "close"))


SESSION = line("nf_confirm [nf_conntrack]", 0)
MODEL = HEAD + SESSION * 3 + new_entry() + SESSION * 2


def test_noise_of_a_real_guest_is_left_out():
    real = (HEAD + line("finish_task_switch.isra.0", 0, "open") + line("_raw_spin_unlock", 1) + line("", 0, "close")
            + SESSION * 2
            # a timer tick inside a session packet's call
            + line("nf_confirm [nf_conntrack]", 0, "open") + line("irq_enter_rcu", 1) + line("__sysvec_apic_timer_interrupt", 1, "open")
            + line("hrtimer_interrupt", 2) + line("", 1, "close") + line("", 0, "close")
            + SESSION  # one session packet more than the model's window
            + new_entry(depth=1)  # the graph started inside a call: indented one level too deep
            + SESSION * 2)
    assert same_graph(MODEL, real)


def test_a_missing_call_is_a_difference():
    real = MODEL.replace(line("hash_conntrack_raw [nf_conntrack]", 2), "")
    assert not same_graph(MODEL, real)
    real = HEAD + SESSION * 5  # the new entry was never confirmed
    assert not same_graph(MODEL, real)


def test_packets_count_a_run_once_but_keep_the_order():
    tree = call_tree(MODEL)
    assert [p[0][0] for p in packets(tree)] == ["nf_confirm", "nf_confirm", "nf_confirm"]
    assert len(packets(tree)[1]) == 3


def test_the_comparer_uses_it_for_function_graph_output_only():
    real = HEAD + SESSION + line("irq_enter_rcu", 0) + SESSION * 4 + new_entry() + SESSION
    cmd = "sudo cat /sys/kernel/debug/tracing/trace"
    v = compare([CommandResult("vm", cmd, MODEL)], [CommandResult("vm", cmd, real)])
    assert v[0].verdict == "same"
    v = compare([CommandResult("vm", cmd, MODEL)], [CommandResult("vm", cmd, HEAD + SESSION)])
    assert v[0].verdict == "divergent"
    v = compare([CommandResult("vm", "lsmod", "a\n")], [CommandResult("vm", "lsmod", "b\n")])
    assert v[0].verdict == "divergent"
