"""The profile of this machine's kernel version against what the running kernel tells,
machine-neutrally: hook and modelled function names from /proc/kallsyms (names only:
addresses and build names differ between machines; the BTF layouts are checked by
tests/vm/test_drgn_dwarf.py).
Skipped, with the reason, when this kernel's version has no profile or its profile is a
Debian package's (derived by ``nfteach vm derive``, tests/vm/test_derive.py)."""
import platform

import pytest

from nfteach.live.backend import kernel_profile
from nfteach.model.profile import available_profiles, load_profile


@pytest.fixture(scope="module")
def prof():
    name = kernel_profile()
    if name not in available_profiles():
        pytest.skip(f"Linux {platform.release()} (version {name}) has no kernel profile")
    p = load_profile(name)
    if "derived" in p.extra:
        pytest.skip(f"profile {name} describes a Debian package build, derived from it "
                    "(tests/vm/test_derive.py), not this machine's kernel")
    return p


def test_hook_functions_exist_under_these_names(prof):
    with open("/proc/kallsyms") as f:
        names = {line.split()[2] for line in f}
    want = set(prof.hookfn.values()) | set(prof.extra["layout"].get("symbols", {}))
    want |= set(prof.extra.get("trace", {}).get("symbols", {}).values())
    missing = sorted(n for n in want if n and n not in names)
    assert not missing, f"not in /proc/kallsyms of {platform.release()}: {missing}"
