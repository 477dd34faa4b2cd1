"""The differential tier's own machinery, on the simulator alone (no root, no qemu):
the comparer finds a divergence in a deliberately broken model, shrinking keeps it, the
generator is deterministic and covers the command surface."""
import random

from nfteach.fidelity import compare, generate, run, shrink
from nfteach.lab import Lab

SCRIPT = ["sudo modprobe nf_conntrack enable_hooks=1", "sudo nft add table ip t", "lsmod | grep nf_",
          "@host nc -w 1 -z 192.168.122.204 2570", "sudo conntrack -L", "sudo conntrack -S"]


def _sim(lines, kernel="6.1"):
    with Lab("sim", kernel=kernel) as lab:
        return lab.script("\n".join(lines)).results


def _break(monkeypatch):
    """The model with one function broken while ``on["broken"]``: the first entry `conntrack -L`
    lists shows the wrong state. Returns the switch."""
    from nfteach.sim.tools import conntrack as cmd_conntrack

    real, on = cmd_conntrack.format_entry, {"broken": False}

    def maybe_broken(ct, timeout, secctx=""):
        out = real(ct, timeout, secctx)
        return out.replace("ESTABLISHED", "CLOSE") if on["broken"] else out

    monkeypatch.setattr(cmd_conntrack, "format_entry", maybe_broken)
    return on


def test_sim_against_itself_is_all_same():
    verdicts = compare.compare(_sim(SCRIPT), _sim(SCRIPT))
    assert [v.verdict for v in verdicts] == ["same"] * len(SCRIPT)


def test_broken_model_is_reported_divergent_and_shrunk(monkeypatch):
    on = _break(monkeypatch)

    def pair(lines):  # sim-broken as the model, sim as the "kernel"
        on["broken"] = True
        try:
            model = _sim(lines)
        finally:
            on["broken"] = False
        return model, _sim(lines)

    model, real = pair(SCRIPT)
    problem = compare.first_problem(compare.compare(model, real))
    assert problem is not None and problem.command == "sudo conntrack -L" and problem.verdict == "divergent"
    assert "CLOSE" in problem.model and "ESTABLISHED" in problem.kernel
    minimal = shrink.shrink(pair, SCRIPT, problem.index, budget=10)
    assert minimal == ["sudo modprobe nf_conntrack enable_hooks=1", "sudo conntrack -L"]
    # the tier itself (what `nfteach fidelity` and tests/fidelity/test_differential.py run) fails on it
    rep = run.run("6.1", "sim-broken", scripts=8, seed=3, shrink_budget=2, run_pair=pair)
    assert rep.problems > 0 and rep.by_kind["conntrack -L"]["divergent"] > 0
    assert any(c.get("minimal") for c in rep.cases)
    assert "conntrack -L" in rep.table() and rep.to_json()["divergent"] == rep.total("divergent")


def test_refusal_and_unobservable_verdicts():
    from nfteach.model.results import CommandResult as R

    nc_u = "nc -u -w 1 -z 192.168.122.204 2570"
    sim = [R("vm", "sudo iptables -t nat -A OUTPUT -j MASQUERADE", "nfteach: iptables -j MASQUERADE is not modelled\n", 2),
           R("vm", "sudo list-nf-hooks", "x\n", 0),
           R("host", nc_u, "nfteach: nc: option -u is not modelled (supported: -z -v -n -w N)\n", 2),
           R("vm", "sudo nft list tables", "", 0), R("vm", "lsmod", "same\n", 0)]
    real = [R("vm", "sudo iptables -t nat -A OUTPUT -j MASQUERADE", "", 0),
            R("vm", "sudo list-nf-hooks", "nfteach: not on this kernel; use --backend vm\n", 2),
            R("host", nc_u, "", 0), R("vm", "sudo nft list tables", "table ip nat\n", 0), R("vm", "lsmod", "same\n", 0)]
    assert [v.verdict for v in compare.compare(sim, real)] == [
        "refused", "unobservable", "refused (non-goal)", "after non-goal", "same"]


def test_generator_is_deterministic_and_covers_the_surface():
    a, b = generate.scripts(7, 60), generate.scripts(7, 60)
    assert a == b and a != generate.scripts(8, 60)
    assert all(3 <= len(s) <= 18 for s in a)
    kinds = {compare.kind(line) for s in a for line in s}
    for want in ("modprobe", "rmmod", "nft add chain", "nft add rule", "conntrack -L", "conntrack -S", "nc",
                 "bpftrace &", "kill", "lsmod", "list-nf-hooks", "sysctl"):
        assert want in kinds, want
    assert any(k.startswith("iptables-legacy") for k in kinds) and any(k.startswith("iptables-nft") for k in kinds)
    # every background job is ended in its script
    for s in a:
        assert sum(line.endswith("&") for line in s) == sum(line.startswith("kill") for line in s)
    assert not any("dmesg" in line for s in generate.scripts(7, 60, "live") for line in s)
    rng = random.Random(1)
    assert generate.script(rng) != generate.script(rng)


def test_normalize_rules_of_the_tier():
    from nfteach.normalize import normalize, release

    # rule 4: kernel log stamps; rule 9: a kernel build name, only where the comparer asks
    assert normalize("[   21.791670] nf_tables: (c) 2007-2009\n") == "[TIMESTAMP] nf_tables: (c) 2007-2009\n"
    # rule 8: a release after /lib/modules/ keeps only major.minor, everywhere
    line = "modprobe: FATAL: Module x not found in directory /lib/modules/6.18.1-a\n"
    assert normalize(line) == line.replace("6.18.1-a", "6.18.RELEASE")
    # rule 9: other mentions of the two builds, only where the comparer names them
    line = "Linux vm 6.18.1-a #1 SMP PREEMPT_DYNAMIC\n"
    assert release(line, "6.18.1-a", "6.18.2-b") == line.replace("6.18.1-a", "RELEASE")
    assert normalize(line) == line


def test_a_real_job_that_timed_out_is_unobservable():
    """A loaded guest's bpftrace that did not end in time (the backend's own last line):
    nothing the kernel said, nothing to compare."""
    from nfteach.model.results import CommandResult as R

    sim = [R("vm", "sudo bpftrace -e 'kprobe:nf_confirm { @n = count(); }' &", "", 0),
           R("vm", "kill -INT %1", "Attaching 1 probe...\n\n\n@n: 0\n", 0), R("vm", "lsmod", "a\n", 0)]
    real = [R("vm", sim[0].command, "", 0),
            R("vm", "kill -INT %1", "Attaching 1 probe...\nnfteach: bpftrace did not end within 120 s and was killed\n", 0),
            R("vm", "lsmod", "b\n", 0)]
    assert [v.verdict for v in compare.compare(sim, real)] == ["same", "unobservable", "divergent"]
