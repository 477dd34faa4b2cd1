"""The contract suite: every scenario of ``nfteach/scenarios/*.lab`` on every backend available.

fsspec style: the tests are written once against ``Lab``; the ``backend_name`` fixture
supplies the backends: ``sim`` (kernel profile 6.18) always, ``live`` when this machine
can run it (root and ``ip netns``), otherwise skipped with the reason.
"""
import os
import subprocess
from pathlib import Path

import pytest

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "nfteach" / "scenarios").glob("*.lab"))
SIM_KERNEL = "6.18"


def live_unavailable():
    if os.geteuid() != 0:
        return "the live backend needs root"
    try:
        if subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10).returncode != 0:
            return "`ip netns` does not work here"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns` is not available: {e}"
    return None


def make_lab(name):
    from nfteach.lab import Lab

    if name == "sim":
        return Lab("sim", kernel=SIM_KERNEL)
    return Lab(name)


@pytest.fixture(params=["sim", pytest.param("live", marks=pytest.mark.live)])
def backend_name(request):
    if request.param == "live":
        why = live_unavailable()
        if why:
            pytest.skip(why)
    return request.param


@pytest.fixture(params=SCENARIOS, ids=[p.stem for p in SCENARIOS])
def scenario(request):
    return request.param
