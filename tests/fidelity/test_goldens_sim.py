"""Regression cases of the differential tier: every scenario of nfteach/scenarios/ on the
simulator equals what the real kernel printed for it (tests/golden/5.10, 6.1: `nfteach
capture` on the vm backend), after normalize. For 6.18 the contract tier
(tests/contract/test_scenarios.py) runs each scenario on sim and live side by side.

Trace scenarios (function_graph, bpftrace kstacks) and drgn are compared by their own
tests (tests/unit/test_trace_golden.py, test_drgn_sim.py): a real kernel's traces vary."""
from pathlib import Path

import pytest

from nfteach.lab import Lab
from nfteach.normalize import normalize

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "nfteach" / "scenarios").glob("*.lab"))
GOLDENS = {"5.10": "5.10", "6.1": "6.1"}  # 6.18: tests/contract runs sim and live side by side
CASES = [(k, s) for k in GOLDENS for s in SCENARIOS if not s.stem.startswith(("trace-", "drgn"))]


@pytest.mark.parametrize("kernel,scenario", CASES, ids=[f"{k}-{s.stem}" for k, s in CASES])
def test_sim_matches_real_kernel_golden(kernel, scenario):
    golden = ROOT / "tests" / "golden" / GOLDENS[kernel] / f"{scenario.stem}.txt"
    if not golden.exists():
        pytest.skip(f"no golden {golden.relative_to(ROOT)} (captured on a real kernel) for this scenario")
    with Lab("sim", kernel=kernel) as lab:
        got = lab.script(scenario.read_text()).text()
    assert normalize(got) == normalize(golden.read_text())
