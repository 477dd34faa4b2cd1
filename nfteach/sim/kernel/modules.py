"""Loadable modules of the netfilter subsystem: ``lsmod``/``modprobe``/``rmmod``/``modinfo``.

Module sizes, dependencies and ``modinfo`` fields are profile data (``[modules.NAME]``).
On a profile with ``modules = false`` everything is built in and the tools fail the way
they fail on such a kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .kernfs import readdir_order

DEFAULT_MODULES: Dict[str, Dict] = {
    # name: deps (dependencies are loaded first)
    "libcrc32c": {"deps": []},
    "nfnetlink": {"deps": []},
    "nf_defrag_ipv4": {"deps": []},
    "nf_defrag_ipv6": {"deps": []},
    "nf_conntrack": {"deps": ["nf_defrag_ipv6", "nf_defrag_ipv4", "libcrc32c"]},
    "nf_conntrack_netlink": {"deps": ["nfnetlink", "nf_conntrack"]},
    "nf_tables": {"deps": ["nfnetlink", "libcrc32c"]},
    "nft_ct": {"deps": ["nf_tables", "nf_conntrack"]},
    "nft_counter": {"deps": ["nf_tables"]},
    "nft_compat": {"deps": ["nf_tables", "x_tables"]},
    "nft_chain_nat": {"deps": ["nf_tables", "nf_nat"]},
    "nf_nat": {"deps": ["nf_conntrack", "libcrc32c"]},
    "x_tables": {"deps": []},
    "ip_tables": {"deps": ["x_tables"]},
    "iptable_filter": {"deps": ["ip_tables", "x_tables"]},
    "iptable_raw": {"deps": ["ip_tables", "x_tables"]},
    "iptable_mangle": {"deps": ["ip_tables", "x_tables"]},
    "iptable_security": {"deps": ["ip_tables", "x_tables"]},
    "iptable_nat": {"deps": ["ip_tables", "nf_nat", "x_tables"]},
    "ip6_tables": {"deps": ["x_tables"]},
    "ip6table_filter": {"deps": ["ip6_tables", "x_tables"]},
    "ip6table_raw": {"deps": ["ip6_tables", "x_tables"]},
    "ip6table_mangle": {"deps": ["ip6_tables", "x_tables"]},
    "ip6table_security": {"deps": ["ip6_tables", "x_tables"]},
    "ip6table_nat": {"deps": ["ip6_tables", "nf_nat", "x_tables"]},
    "xt_conntrack": {"deps": ["x_tables", "nf_conntrack"]},
    "xt_state": {"deps": ["x_tables", "nf_conntrack"]},
    "xt_CT": {"deps": ["x_tables", "nf_conntrack"]},
    "xt_tcpudp": {"deps": ["x_tables"]},
}


@dataclass
class Module:
    name: str
    size: int
    deps: List[str]
    refs: int = 0  # try_module_get references besides dependent modules
    holders: List[str] = field(default_factory=list)  # modules that depend on this one
    params: Dict[str, str] = field(default_factory=dict)


class ModuleError(Exception):
    pass


class Modules:
    def __init__(self, profile, on_load: Callable[[str, Dict[str, str]], None],
                 on_unload: Callable[[str], None]):
        self.profile = profile
        self.table: Dict[str, Dict] = {}
        for name, spec in DEFAULT_MODULES.items():
            self.table[name] = dict(spec)
        for name, spec in profile.extra.get("kmod", {}).items():
            self.table.setdefault(name, {}).update(spec)
        if "derived" in profile.extra:  # `nfteach vm derive` read the kernel's module list:
            for name in [n for n in self.table if n not in profile.extra["kmod"]]:
                del self.table[name]  # not a module there (6.1: nft_counter is in nf_tables.ko)
        self.loaded: Dict[str, Module] = {}  # insertion order = load order
        self.on_load, self.on_unload = on_load, on_unload

    @property
    def enabled(self) -> bool:
        return self.profile.modules

    def known(self, name: str) -> bool:
        return name.replace("-", "_") in self.table

    def load(self, name: str, params: Optional[Dict[str, str]] = None) -> bool:
        """``modprobe``: load ``name`` and its dependencies. False if already loaded."""
        name = name.replace("-", "_")
        if name in self.loaded:
            return False
        spec = self.table[name]
        # modprobe inserts the modules.dep list from its end (measured on 5.10: libcrc32c,
        # nf_defrag_ipv4, nf_defrag_ipv6, then nf_conntrack); that list (``load``, derived)
        # names every module needed, in depmod's order, which the direct deps alone do not
        # give (nft_compat: libcrc32c, x_tables, nfnetlink, nf_tables on vm 5.10)
        if "load" in spec:
            for dep in reversed(spec["load"]):
                if dep in self.table and dep not in self.loaded:
                    self._insert(dep, {})
        for dep in reversed(spec.get("deps", [])):
            self.load(dep)
        self._insert(name, params)
        return True

    def _insert(self, name: str, params: Optional[Dict[str, str]]) -> None:
        spec = self.table[name]
        mod = Module(name, int(spec.get("size", 0)), list(spec.get("deps", [])), params=dict(params or {}))
        for dep in mod.deps:
            self.loaded[dep].holders.append(name)
        self.loaded[name] = mod
        self.on_load(name, mod.params)

    def unload(self, name: str) -> None:
        """``rmmod``: refuses while in use, like ``delete_module()`` (EBUSY)."""
        name = name.replace("-", "_")
        mod = self.loaded.get(name)
        if mod is None:
            raise ModuleError("not loaded")
        if mod.holders or mod.refs:
            raise ModuleError("in use")
        self.on_unload(name)
        for dep in mod.deps:
            if dep in self.loaded and name in self.loaded[dep].holders:
                self.loaded[dep].holders.remove(name)
        del self.loaded[name]

    def get(self, name: str, holder: str = "") -> None:
        """``try_module_get``/a symbol reference: keeps ``name`` loaded."""
        name = name.replace("-", "_")
        if name not in self.loaded:
            self.load(name)
        self.loaded[name].refs += 1

    def put(self, name: str, holder: str = "") -> None:
        name = name.replace("-", "_")
        if name in self.loaded and self.loaded[name].refs > 0:
            self.loaded[name].refs -= 1

    def use_count(self, name: str) -> int:
        m = self.loaded[name]
        return len(m.holders) + m.refs

    def lsmod(self) -> str:
        lines = ["Module                  Size  Used by"]
        for name in reversed(list(self.loaded)):
            m = self.loaded[name]
            line = f"{name:<19} {m.size:>8}  {self.use_count(name)}"
            if m.holders:  # kmod reads /sys/module/NAME/holders/: kernfs order
                line += " " + ",".join(readdir_order(m.holders))
            lines.append(line)
        return "\n".join(lines) + "\n"
