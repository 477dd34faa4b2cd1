"""The contract suite: every scenario of ``nfteach/scenarios/*.lab`` on every backend available.

fsspec style: the tests are written once against ``Lab``; the ``backend_name`` fixture
supplies the backends: ``sim`` (kernel profile 6.18) always, ``live`` when this machine
can run it (root and ``ip netns``), otherwise skipped with the reason. The sim-vs-live
comparison runs the simulator with the profile of this machine's kernel version
(major.minor), and skips when there is none.
"""
from pathlib import Path

import pytest

from nfteach.live.capability import why_not_live

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "nfteach" / "scenarios").glob("*.lab"))
SIM_KERNEL = "6.18"


#: None when the live backend can run here, else why not: the package's own check
live_unavailable = why_not_live


def live_profile():
    """(profile name of this machine's kernel, None) or (None, why the comparison cannot run)."""
    import platform

    from nfteach.live.backend import kernel_profile
    from nfteach.model.profile import available_profiles

    name = kernel_profile()
    if name not in available_profiles():
        return None, (f"this machine runs Linux {platform.release()} (version {name}), which has no "
                      f"kernel profile (nfteach/model/profiles: {', '.join(available_profiles())}); "
                      "there is no simulator to compare the live backend with")
    return name, None


def make_lab(name, kernel=SIM_KERNEL):
    from nfteach.lab import Lab

    if name == "sim":
        return Lab("sim", kernel=kernel)
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
