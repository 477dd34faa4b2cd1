"""Profiles: hand-written ``K.toml`` with the derived ``K.derived.toml`` laid over it."""
import sys

import pytest

from nfteach.model.errors import LabError
from nfteach.model.profile import PROFILE_DIR, available_profiles, load_profile, overlay

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DERIVED = sorted(PROFILE_DIR.glob("*.derived.toml"))


def test_overlay_merges_tables_and_derived_wins():
    base = {"a": 1, "t": {"x": 1, "y": 2}, "kmod": {"m": {"size": 0, "parms": ["p"]}}}
    top = {"a": 2, "t": {"y": 3}, "kmod": {"m": {"size": 16384}}}
    assert overlay(base, top) == {"a": 2, "t": {"x": 1, "y": 3}, "kmod": {"m": {"size": 16384, "parms": ["p"]}}}


def test_derived_files_are_not_profiles():
    assert DERIVED, "no derived profile committed"
    assert not any(n.endswith(".derived") for n in available_profiles())
    with pytest.raises(LabError):
        load_profile(DERIVED[0].name.removesuffix(".toml"))


def _paths(d, prefix=""):
    for k, v in d.items():
        p = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            yield from _paths(v, p)
        else:
            yield p


@pytest.mark.parametrize("path", DERIVED, ids=[p.name for p in DERIVED])
def test_derived_facts_have_one_home(path):
    """A derived fact is not also typed into the hand-written profile, and the loaded
    profile carries the derived value and the note of where it came from."""
    kernel = path.name.removesuffix(".derived.toml")
    derived = tomllib.loads(path.read_text())
    hand = tomllib.loads((PROFILE_DIR / f"{kernel}.toml").read_text())
    assert derived["derived"]["packages"] and derived["derived"]["fields"]
    both = set(_paths(derived)) & set(_paths(hand))
    assert not both, f"{kernel}: typed by hand and derived: {sorted(both)}"
    p = load_profile(kernel)
    assert p.uname_r == derived["uname_r"]
    assert p.extra["derived"]["tool"] == "nfteach vm derive"
    for name, spec in derived["kmod"].items():
        assert {k: p.extra["kmod"][name][k] for k in spec} == spec


def test_parse_modinfo_keeps_order_and_continuations():
    from nfteach.fidelity.derive import parse_modinfo

    text = ("filename:       /lib/modules/5.10.0-32-cloud-amd64/kernel/net/netfilter/nf_conntrack.ko\n"
            "license:        GPL\nalias:          ip_conntrack\n"
            "signature:      05:54:57\n\t\tC7:F4:4C\n"
            "parm:           enable_hooks:Always enable conntrack hooks (bool)\n")
    assert parse_modinfo(text) == [["license", "GPL"], ["alias", "ip_conntrack"],
                                   ["signature", "05:54:57\n\t\tC7:F4:4C"],
                                   ["parm", "enable_hooks:Always enable conntrack hooks (bool)"]]


@pytest.mark.parametrize("kernel", [p.name.removesuffix(".derived.toml") for p in DERIVED])
def test_sim_modinfo_prints_the_guests_fields(kernel):
    from nfteach.lab import Lab

    mod = load_profile(kernel).extra["kmod"]["nf_conntrack"]
    rows = mod["modinfo"]
    with Lab("sim", kernel=kernel) as lab:
        out = lab.run("modinfo nf_conntrack").output
    release = load_profile(kernel).uname_r
    # the path modules.dep gives (6.12 ships .ko.xz)
    assert mod["path"].startswith("kernel/net/netfilter/nf_conntrack.ko")
    assert out.startswith(f"filename:       /lib/modules/{release}/{mod['path']}\n")
    for field, value in rows:
        assert f"{field + ':':<16}{value}\n" in out


@pytest.mark.parametrize("kernel", [p.name.removesuffix(".derived.toml") for p in DERIVED])
def test_sim_knows_exactly_the_kernels_modules(kernel):
    """A modelled module the package does not ship (6.1: nft_counter is part of nf_tables.ko)
    is not a module on the simulator either."""
    from nfteach.sim.kernel.kernel import Kernel

    k = Kernel(kernel)
    assert set(k.modules.table) == set(load_profile(kernel).extra["kmod"])
