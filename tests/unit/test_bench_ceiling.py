"""bench/sim_ceiling.py times two hand-flattened copies of the sim's accept path: they must
leave exactly the entries the model leaves, or the ceiling they measure is not the model's."""
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_flattened_copies_leave_the_models_entries():
    sys.path.insert(0, str(BENCH))
    try:
        import sim_ceiling
    finally:
        sys.path.remove(str(BENCH))
    _, want = sim_ceiling.run("model", 300)
    assert len(want) >= 300 and all(e[2] & 8 for e in want)  # confirmed (IPS_CONFIRMED)
    for variant in ("inlined", "flat"):
        rate, got = sim_ceiling.run(variant, 300)
        assert rate > 0 and got == want, variant
