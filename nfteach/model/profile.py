"""Kernel profiles: everything that differs between kernel versions, as data.

One TOML file per kernel in ``profiles/``, written by hand (``K.toml``), and beside it the
facts read from the kernel build by ``nfteach vm derive --kernel K`` (``K.derived.toml``),
laid over it table by table: a derived value wins. Code asks the profile (``p.hookfn["confirm4"]``,
``p.modules``, ...) instead of branching on version numbers.

>>> p = load_profile("6.1")
>>> p.hookfn["xt_filter4"], p.has_unconfirmed_list
('ipt_do_table', False)
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore

from .errors import LabError

PROFILE_DIR = Path(__file__).with_name("profiles")
DEFAULT_KERNEL = "5.10"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    uname_r: str
    modules: bool
    has_unconfirmed_list: bool
    defrag_stays_registered: bool
    ncpus: int
    ram_mb: int
    nf_conntrack_buckets: int
    nf_conntrack_max: int
    secctx: str
    tools: Dict[str, str]
    functions: Dict[str, str]
    hookfn: Dict[str, str]
    lsm: List[Dict[str, Any]]
    extra: Dict[str, Any] = field(default_factory=dict)

    def fn(self, role: str) -> str:
        return self.functions.get(role, "")


_cache: Dict[tuple, Profile] = {}
DERIVED = ".derived"


def available_profiles() -> List[str]:
    names = [p.stem for p in PROFILE_DIR.glob("*.toml") if not p.stem.endswith(DERIVED)]
    return sorted(names, key=lambda n: tuple(int(x) for x in n.split(".")))


def overlay(base: dict, top: dict) -> dict:
    """``base`` with ``top`` laid over it: tables merge key by key, other values are replaced."""
    out = dict(base)
    for k, v in top.items():
        out[k] = overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_profile(name: str | None = None, derived: bool = True) -> Profile:
    """The profile ``name``; ``derived=False``: the hand-written file alone."""
    name = name or DEFAULT_KERNEL
    if (name, derived) in _cache:
        return _cache[(name, derived)]
    path = PROFILE_DIR / f"{name}.toml"
    if not isinstance(name, str) or "/" in name or name.endswith(DERIVED) or not path.is_file():
        raise LabError(
            f"unknown kernel profile {name!r}; available: {', '.join(available_profiles())}", token=str(name)
        )
    data = tomllib.loads(path.read_text())
    dpath = PROFILE_DIR / f"{name}{DERIVED}.toml"
    if derived and dpath.is_file():
        data = overlay(data, tomllib.loads(dpath.read_text()))
    known = {f for f in Profile.__dataclass_fields__ if f != "extra"}
    kw = {k: data[k] for k in known if k in data}
    kw.setdefault("lsm", [])
    kw.setdefault("uname_r", "")  # derived (K.derived.toml); absent from the hand-written file alone
    kw.setdefault("tools", {})
    kw["extra"] = {k: v for k, v in data.items() if k not in known}
    prof = Profile(**kw)
    _cache[(name, derived)] = prof
    return prof
