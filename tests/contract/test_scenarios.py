"""Each scenario runs on each backend; the simulator's transcript equals the live kernel's
after ``nfteach.normalize.normalize``."""
import pytest
from conftest import SIM_KERNEL, live_profile, live_unavailable, make_lab

from nfteach.normalize import normalize


def run_scenario(backend, path, kernel=SIM_KERNEL):
    with make_lab(backend, kernel) as lab:
        return lab.script(path.read_text())


def _unobservable(output):
    """The live backend's one-line refusal for a facility this kernel lacks (it names the
    backend that has it), e.g. list-nf-hooks without `nft list hooks` and /proc/kcore."""
    return output.startswith("nfteach: ") and output.count("\n") == 1 and "--backend vm" in output


def comparable(sim_t, live_t):
    """Both transcripts as text, with the commands that live could not observe masked on
    both sides: there is nothing on this kernel to compare the simulator with."""
    masked = "nfteach: (not observable on the live backend of this kernel)\n"
    pending_job = False  # a refused background job: the step that ends it is masked too
    for i, (s, lv) in enumerate(zip(sim_t.results, live_t.results)):
        ends_job = pending_job and lv.command.split()[0] in ("kill", "wait")
        if _unobservable(lv.output) or ends_job:
            sim_t.results[i] = type(s)(s.machine, s.command, masked, 0)
            live_t.results[i] = type(lv)(lv.machine, lv.command, masked, 0)
            pending_job = lv.command.endswith("&") and not ends_job
    return normalize(sim_t.text()), normalize(live_t.text())


def test_scenario_runs(backend_name, scenario):
    t = run_scenario(backend_name, scenario)
    lines = [ln for ln in scenario.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(t.results) == len(lines)
    for r in t.results:
        assert "Traceback" not in r.output, r
        if r.status != 0 and r.output.startswith("nfteach: "):
            assert r.output.count("\n") == 1, r  # our own errors: one line


@pytest.mark.live
def test_sim_matches_live(scenario):
    why = live_unavailable()
    if why:
        pytest.skip(why)
    kernel, why = live_profile()
    if why:
        pytest.skip(why)
    # A live run can lose a race the simulator never has (nc's 1 s timeout against the
    # first SYN retransmission at 1 s): retry the live run, the sim must match one of them.
    first = None
    for _ in range(3):
        sim, live = comparable(run_scenario("sim", scenario, kernel), run_scenario("live", scenario))
        if live == sim:
            return
        first = first or (sim, live)
    assert first[0] == first[1]
