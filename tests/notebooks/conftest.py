"""Run the whole course once per test session (sim, kernel 5.10) and share the results."""
import time

import pytest

nbclient = pytest.importorskip("nbclient", reason="the notebook tier needs nbclient (pip install 'nfteach[notebooks]')")
pytest.importorskip("ipykernel", reason="the notebook tier needs ipykernel")


@pytest.fixture(scope="session")
def course_run(tmp_path_factory):
    """(steps, seconds): every notebook executed top to bottom on sim 5.10."""
    from nfteach.tour import run_course

    out = tmp_path_factory.mktemp("executed")
    t0 = time.monotonic()
    steps = run_course("sim", "5.10", out=out, timeout=120)
    return steps, time.monotonic() - t0
