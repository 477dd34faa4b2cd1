"""The simulator's traces against real kernels' captures (tests/golden/{5.10,6.1}/trace-*.txt,
written by ``nfteach capture --kernel K`` on the vm backend).

Real captures carry noise the model does not have (timer interrupts inside a function_graph on
a slow guest), so each comparison states what must agree: the SYN lines of the article's
program, the whole function_graph call tree (interrupt entries and their subtrees left out),
the kernel stacks with their counts (IPv6 link traffic left out), and the variations after ``normalize`` (map lines
compared as sets: bpftrace prints equal counts in hash order). A test skips only when its
golden file is not there yet.
"""
import re
from pathlib import Path

import pytest

from nfteach import Lab
from nfteach.fidelity.graph import call_tree, packets
from nfteach.normalize import normalize

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ["5.10", "6.1", "6.12"]


def golden(kernel, name):
    p = ROOT / "tests" / "golden" / kernel / f"{name}.txt"
    if not p.is_file():
        pytest.skip(f"{p.relative_to(ROOT)} not captured yet (nfteach capture --kernel {kernel} on the vm backend)")
    return p.read_text()


def sim(kernel, name):
    with Lab("sim", kernel=kernel) as lab:
        return lab.script((ROOT / "nfteach" / "scenarios" / f"{name}.lab").read_text()).text()


def outputs(transcript):
    """[(command, output)] of a Transcript.text()."""
    out, cmd, buf = [], None, []
    for ln in transcript.split("\n"):
        m = re.match(r"^(vm|host)\$ (.*)$", ln)
        if m:
            if cmd is not None:
                out.append((cmd, "\n".join(buf)))
            cmd, buf = m.group(2), []
        else:
            buf.append(ln)
    if cmd is not None:
        out.append((cmd, "\n".join(buf)))
    return out


def output_of(transcript, prefix, nth=0):
    hits = [o for c, o in outputs(transcript) if c.startswith(prefix)]
    return hits[nth]


@pytest.mark.parametrize("kernel", KERNELS)
def test_bpftrace_syn_lines(kernel):
    real = golden(kernel, "trace-bpftrace")
    mine = sim(kernel, "trace-bpftrace")

    def syns(t):
        return [normalize(ln) for ln in output_of(t, "kill").splitlines() if "tcp syn" in ln]
    assert syns(mine) == syns(real)


@pytest.mark.parametrize("kernel", KERNELS)
def test_function_graph_samecall_tree(kernel):
    """Every graphed call, its callees (RCU, locks, slab, checksum helpers included) and their
    nesting, in order: the two new SYNs (init_conntrack) and the session's packets."""
    real = call_tree(output_of(golden(kernel, "trace-function-graph"), "sudo cat"))
    mine = call_tree(output_of(sim(kernel, "trace-function-graph"), "sudo cat"))
    assert any(n.startswith("init_conntrack") for _, n in real)
    assert mine == real


def _stacks(text):
    """{(frames...): count} of the kstack maps in a bpftrace output."""
    return {tuple(ln.strip() for ln in m.group(1).strip("\n").splitlines()): int(m.group(2))
            for m in re.finditer(r"@\[\n((?:    .*\n)+)\]: (\d+)", text + "\n")}


def job_output(transcript, nth):
    """What the nth background command printed, wherever the backend shows it: the vm backend
    collects a job's output at ``kill``; the sim and live labs show a job that ended at once
    (a probe that cannot attach) at the step that started it, and ``kill`` finds no job."""
    steps = outputs(transcript)
    starts = [i for i, (c, _) in enumerate(steps) if c.endswith("&")]
    i = starts[nth]
    kill = next(o for c, o in steps[i + 1:] if c.startswith("kill"))
    kill = "\n".join(ln for ln in kill.split("\n") if not re.fullmatch(r"nfteach: %\d+: no such job", ln))
    return steps[i][1] + kill


@pytest.mark.parametrize("kernel,nth", [("5.10", 0), ("6.1", 0), ("6.12", 0), ("5.10", 1), ("6.1", 1), ("6.12", 1)])
def test_kernel_stacks_are_the_real_ones(kernel, nth):
    """Same stacks, frame for frame with the captured offsets, and the same counts: the
    dropped SYNs (nc's, and the retransmission's via ksoftirqd on 5.10), the client's own SYN
    confirmed on its output path, and nc's two failed nscd connects (unix_stream_connect)."""
    real, mine = job_output(golden(kernel, "trace-kstack"), nth), job_output(sim(kernel, "trace-kstack"), nth)
    if "Error attaching probe" in real:  # 6.1: the unconfirmed-list function is gone
        assert [ln for ln in mine.splitlines() if ln.strip()] == [ln for ln in real.splitlines() if ln.strip()]
        return
    # IPv6 link traffic of the lab's veth pair (MLD/router solicitations dropped in ip6_mc_input)
    # shows up in some real runs; the model has no IPv6 traffic, so those stacks are left out
    real_stacks = {st: n for st, n in _stacks(real).items() if not any(f.startswith("ip6_") for f in st)}
    assert real_stacks
    assert _stacks(mine) == real_stacks


def _sorted_maps(text):
    out, block = [], []
    for ln in text.split("\n"):
        if re.match(r"^@\w*\[[^\n]*\]: \d+$|^@\w*: \d+$", ln):
            block.append(ln)
            continue
        out.extend(sorted(block))
        block = []
        out.append(ln)
    out.extend(sorted(block))
    return "\n".join(out)


@pytest.mark.parametrize("kernel", KERNELS)
def test_variations_same_answer_as_the_real_kernel(kernel):
    real = golden(kernel, "trace-variations")
    assert _sorted_maps(normalize(sim(kernel, "trace-variations"))) == _sorted_maps(normalize(real))


@pytest.mark.parametrize("kernel", KERNELS)
def test_confirm_hook_samecall_tree(kernel):
    """The confirm hook packet by packet, before and after nf_conntrack_netlink is loaded: the
    insert of each new entry under its buckets' locks, and on 5.10 the event delivery after
    every packet, which asks ctnetlink for listeners when the packet changed the entry."""
    real, mine = golden(kernel, "trace-confirm-graph"), sim(kernel, "trace-confirm-graph")
    roots = {"nf_confirm"}
    for nth in (0, 1):
        want = packets(call_tree(output_of(real, "sudo cat", nth), roots))
        assert any(("__nf_conntrack_confirm", 1) in p for p in want)
        assert packets(call_tree(output_of(mine, "sudo cat", nth), roots)) == want, f"trace {nth + 1}"



@pytest.mark.parametrize("kernel", KERNELS)
def test_delete_path_same_call_tree(kernel):
    """A closed port's RST kills the entry (nf_ct_kill_acct -> nf_ct_delete, 5.10's clone
    nf_ct_delete.part.0 at that call): the unhash under both locks, 5.10's dying list and
    DESTROY event to ctnetlink, and the RST's checksum summed in software."""
    real, mine = golden(kernel, "trace-delete-graph"), sim(kernel, "trace-delete-graph")
    roots = {"ipv4_conntrack_in"}
    want = packets(call_tree(output_of(real, "sudo cat"), roots))
    assert any(("nf_ct_remove_expectations", d) in p for p in want for d in range(4, 12))
    assert packets(call_tree(output_of(mine, "sudo cat"), roots)) == want
