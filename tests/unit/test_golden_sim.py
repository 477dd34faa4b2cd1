"""The simulator against the real kernels' goldens (tests/golden/<kernel>/, `nfteach capture`):
every scenario whose output does not depend on run-to-run noise gives the same normalised
transcript on sim as on the vm backend's real Debian kernel. (Traces are compared in
test_trace_golden.py, call tree by call tree and stack by stack.)"""
from pathlib import Path

import pytest

from nfteach.lab import Lab
from nfteach.normalize import normalize

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.stem for p in (ROOT / "nfteach" / "scenarios").glob("*.lab") if not p.stem.startswith("trace-"))


@pytest.mark.parametrize("kernel", ["5.10", "6.1", "6.12"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_sim_equals_golden(kernel, name):
    golden = ROOT / "tests" / "golden" / kernel / f"{name}.txt"
    if not golden.exists():
        pytest.skip(f"{golden.relative_to(ROOT)} not captured (nfteach capture --kernel {kernel})")
    if name == "drgn":
        pytest.importorskip("drgn", reason="the drgn scenario runs the drgn library, which has no wheel for this platform")
    with Lab("sim", kernel=kernel) as lab:
        t = lab.script((ROOT / "nfteach" / "scenarios" / f"{name}.lab").read_text())
    assert normalize(t.text()) == normalize(golden.read_text())
