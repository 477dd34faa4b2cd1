"""The modelled kernel: a clock, namespaces, modules, conntrack and the packet path.

>>> from nfteach.sim.kernel.kernel import Kernel
>>> k = Kernel("5.10")
>>> sorted(k.namespaces)
['host', 'init_net']
"""
from __future__ import annotations

import heapq
import itertools
import random
from typing import Callable, Dict, List

from ...model.notes import LAB
from ...model.profile import load_profile
from .conntrack import Conntrack
from .modules import Modules
from .netfilter import HookOps
from .netns import Netns
from .stack import Stack
from .tracer import Tracer


class Kernel:
    """One kernel with two namespaces: ``init_net`` (the lab's vm) and ``host``."""

    def __init__(self, profile: str | None = None, seed: int = 0):
        self.profile = load_profile(profile)
        self.now = 1000.0  # model seconds since boot
        self.cpu = 0
        self.rng = random.Random(seed)
        self._events: List = []
        self._seq = itertools.count()
        self.tracer = Tracer(self)
        self.messages: List[str] = []  # dmesg
        self.conntrack = Conntrack(self)
        self.modules = Modules(self.profile, self._module_loaded, self._module_unloaded)
        self.namespaces: Dict[str, Netns] = {}
        self._inums = itertools.count(4026531840)
        self.stack = Stack(self)
        init = self.add_netns("init_net")
        host = self.add_netns("host")
        if not self.profile.modules:
            # built in: the subsystem exists from boot, hooks only for users
            self.conntrack.load(enable_hooks=False)
        self.stack.link(init, LAB["vm"]["addr"], host, LAB["host"]["addr"])
        # the guest's own drivers, loaded at boot (the tail of a bare `lsmod` on the vm)
        for name in self.profile.extra.get("boot_modules", []) if self.profile.modules else []:
            self.modules.load(name)
        for name in self.profile.extra.get("boot_module_refs", []) if self.profile.modules else []:
            self.modules.get(name, "boot")

    # -- namespaces -----------------------------------------------------------------------
    def add_netns(self, name: str) -> Netns:
        ns = Netns(self, name, next(self._inums))
        self.namespaces[name] = ns
        for lsm in self.profile.lsm:
            from .netfilter import HOOK_NAMES

            ns.nf.register(HookOps(lsm["pf"], HOOK_NAMES.index(lsm["hook"]), int(lsm["priority"]),
                                   lsm["fn"], "lsm", _accept))
        if self.conntrack.loaded:
            self.conntrack.pernet_init(ns)
        return ns

    # -- modules --------------------------------------------------------------------------
    def request_module(self, name: str) -> None:
        """``request_module()``: autoload (no-op on a kernel without modules)."""
        if self.profile.modules and self.modules.known(name):
            self.modules.load(name)

    def module_get(self, name: str, holder: str = "") -> None:
        if self.profile.modules and self.modules.known(name):
            self.modules.get(name, holder)

    def module_put(self, name: str, holder: str = "") -> None:
        if self.profile.modules and self.modules.known(name):
            self.modules.put(name, holder)

    def _module_loaded(self, name: str, params: Dict[str, str]) -> None:
        if name == "nf_conntrack_netlink":  # registers conntrack's event notifier (ecache.py)
            self.conntrack.event_cb = True
        elif name == "nf_conntrack":
            val = params.get("enable_hooks", "0").lower()
            self.conntrack.load(enable_hooks=val in ("1", "y", "yes", "true", "on"))
        elif name.startswith(("iptable_", "ip6table_")) and self.profile.extra.get("xtables", {}).get("tables_in_init_net"):
            # before 5.13 the module's init instantiates its table in init_net (profile
            # xtables.tables_in_init_net): the table and its hooks exist there at load
            from .ip_tables import TABLES, XtTable

            v6 = name.startswith("ip6")
            ns, table = self.namespaces.get("init_net"), name.split("_", 1)[1]
            tables = None if ns is None else (ns.xt6 if v6 else ns.xt)
            if tables is not None and table in TABLES and table not in tables:
                tables[table] = XtTable(ns, table, "ipv6" if v6 else "ipv4")

    def _module_unloaded(self, name: str) -> None:
        if name == "nf_conntrack_netlink":
            self.conntrack.event_cb = False
        elif name == "nf_conntrack":
            self.conntrack.unload()
        elif name.startswith(("iptable_", "ip6table_")):
            for ns in self.namespaces.values():  # only an unused table can go: its hooks go
                t = (ns.xt6 if name.startswith("ip6") else ns.xt).pop(name.split("_", 1)[1], None)
                if t is not None:
                    t.release()
        elif name == "nf_tables":
            # its pernet exit releases what is left (tables, chains, their hooks: nothing
            # left holds the module); a reload starts from empty, handles from 1
            for ns in self.namespaces.values():
                if ns.nft is not None:
                    ns.nft.flush_ruleset()
                    ns.nft = None

    # -- time -----------------------------------------------------------------------------
    def schedule(self, delay: float, fn: Callable, *args) -> None:
        heapq.heappush(self._events, (self.now + delay, next(self._seq), fn, args))

    def run_until(self, t: float) -> None:
        while self._events and self._events[0][0] <= t:
            when, _, fn, args = heapq.heappop(self._events)
            self.now = max(self.now, when)
            fn(*args)
        self.now = max(self.now, t)

    def advance(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def settle(self, limit: float = 0.5) -> None:
        """Deliver packets in flight (everything scheduled within ``limit`` seconds)."""
        self.run_until(self.now + limit)

    def log(self, msg: str) -> None:
        self.messages.append(f"[{self.now:12.6f}] {msg}")

    def netns(self, machine: str) -> Netns:
        return self.namespaces["init_net" if machine == "vm" else "host"]


def _accept(skb, state) -> int:
    return 1
