"""``nfteach vm derive``: the committed ``profiles/K.derived.toml`` is what the kernel build says.

Derives again from the cached Debian packages and a booted guest, and fails when a fact
differs from the committed file (re-run ``nfteach vm derive --kernel K`` and review the diff).
"""
import sys

from nfteach.fidelity import derive
from nfteach.model.profile import load_profile
from nfteach.vm import fetch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _diff(a, b, path=""):
    """Paths where the two parsed TOML documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    return [] if a == b else [f"{path}: committed {a!r}, derived now {b!r}"]


def test_committed_profile_matches_a_fresh_derivation(kernel):
    committed = derive.derived_path(kernel)
    assert committed.is_file(), f"no {committed.name}; run `nfteach vm derive --kernel {kernel}`"
    fresh = tomllib.loads(derive.derive(kernel, guest=True, progress=lambda m: None))
    diff = _diff(tomllib.loads(committed.read_text()), fresh)
    assert not diff, f"{kernel}: run `nfteach vm derive --kernel {kernel}`; differences:\n" + "\n".join(diff[:40])


def test_hand_written_offsets_are_real_call_sites(kernel):
    """kstack offsets left hand-written (several call sites, or an indirect call) are, when the
    caller calls the callee directly at all, one of those call sites."""
    prof = load_profile(kernel, derived=False)
    man = fetch.read_manifest(kernel)
    debug = fetch.kernel_dir(kernel) / "debug"
    _mods, _clones, where = derive.function_facts(debug, derive.modelled_functions(prof))
    _unique, sites = derive.kstack_facts(where)
    for key, off in prof.extra["trace"]["kstack"].get("offsets", {}).items():
        if sites.get(key):
            assert off in sites[key], f"{kernel} {man['release']}: {key} = {off}, call sites {sites[key]}"
