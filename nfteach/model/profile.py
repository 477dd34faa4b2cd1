"""Kernel profiles: everything that differs between kernel versions, as data.

One TOML file per kernel in ``profiles/``. Code asks the profile (``p.hookfn["confirm4"]``,
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


_cache: Dict[str, Profile] = {}


def available_profiles() -> List[str]:
    names = [p.stem for p in PROFILE_DIR.glob("*.toml")]
    return sorted(names, key=lambda n: tuple(int(x) for x in n.split(".")))


def load_profile(name: str | None = None) -> Profile:
    name = name or DEFAULT_KERNEL
    if name in _cache:
        return _cache[name]
    path = PROFILE_DIR / f"{name}.toml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        raise LabError(
            f"unknown kernel profile {name!r}; available: {', '.join(available_profiles())}", token=str(name)
        )
    data = tomllib.loads(path.read_text())
    known = {f for f in Profile.__dataclass_fields__ if f != "extra"}
    kw = {k: data[k] for k in known if k in data}
    kw.setdefault("lsm", [])
    kw["extra"] = {k: v for k, v in data.items() if k not in known}
    prof = Profile(**kw)
    _cache[name] = prof
    return prof
