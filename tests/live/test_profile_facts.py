"""The profile of this machine's kernel version against what the running kernel tells,
machine-neutrally: struct layouts from its BTF, hook and modelled function names from
/proc/kallsyms (names only: addresses and build names differ between machines).
Skipped, with the reason, when this kernel's version has no profile or the profile's
layouts were not taken from BTF (the Debian profiles are derived from DWARF by
``nfteach vm derive``, tests/vm/test_derive.py)."""
import os
import platform

import pytest

from nfteach.introspect import layouts
from nfteach.live.backend import kernel_profile
from nfteach.model.profile import available_profiles, load_profile

BTF = "/sys/kernel/btf/vmlinux"


@pytest.fixture(scope="module")
def prof():
    name = kernel_profile()
    if name not in available_profiles():
        pytest.skip(f"Linux {platform.release()} (version {name}) has no kernel profile")
    p = load_profile(name)
    if not p.extra.get("layout", {}).get("source", "").startswith("BTF"):
        pytest.skip(f"profile {name}'s layouts come from DWARF of a Debian package, not from a running kernel")
    if not os.path.exists(BTF):
        pytest.skip(f"this kernel has no {BTF}")
    return p


def test_layouts_are_this_kernels_btf(prof):
    data = layouts.from_btf(BTF)
    lay = prof.extra["layout"]
    for table in ("types", "enums", "typedefs"):
        diff = sorted(k for k in set(data[table]) | set(lay[table]) if data[table].get(k) != lay[table].get(k))
        assert not diff, f"[layout.{table}] differs from {BTF} for {diff}; regenerate with " \
                         "`python -m nfteach.introspect.layouts --btf`"


def test_hook_functions_exist_under_these_names(prof):
    with open("/proc/kallsyms") as f:
        names = {line.split()[2] for line in f}
    want = set(prof.hookfn.values()) | set(prof.extra["layout"].get("symbols", {}))
    want |= set(prof.extra.get("trace", {}).get("symbols", {}).values())
    missing = sorted(n for n in want if n and n not in names)
    assert not missing, f"not in /proc/kallsyms of {platform.release()}: {missing}"
