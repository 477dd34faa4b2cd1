"""What the lab's observations return: hook chains, conntrack entry states, packet paths,
lifecycles and comparisons of two kernels. Plain data; every picture has ``.dot`` (the
Graphviz source), ``.svg()`` and ``_repr_svg_``. How they are made: :mod:`nfteach.observe`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .model.netfilter import HOOK_NAMES

HOOKS = HOOK_NAMES
MACHINE_OF_NS = {"init_net": "vm", "host": "host"}


def owner_kind(owner: str, function: str = "") -> str:
    """``conntrack``, ``nat``, ``iptables``, ``nft``, ``lsm`` or ``other``: what colours a callback."""
    o, f = owner or "", function or ""
    if o == "conntrack" or (not o and ("conntrack" in f or "confirm" in f or "defrag" in f)):
        return "conntrack"
    if o.startswith("nf_nat") or (not o and f.startswith("nf_nat")):
        return "nat"
    if o.startswith(("iptable_", "ip6table_", "arptable_")) or (not o and ("table" in f or "ipt_" in f)):
        return "iptables"
    if o.startswith("nft") or (not o and f.startswith("nft_")):
        return "nft"
    if o == "lsm" or (not o and any(s in f for s in ("selinux", "apparmor", "smack"))):
        return "lsm"
    return "other"


def owner_label(owner: str, kind: str) -> str:
    if kind == "iptables" and owner.startswith(("iptable_", "ip6table_")):
        return "iptables " + owner.split("_", 1)[1]
    return owner or kind


class _Graphable:
    """``.dot``/``.source``, ``.svg()`` and ``_repr_svg_`` from ``nfteach.render.graphs``."""

    def graph(self):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    @property
    def dot(self) -> str:
        return self.graph().source

    source = dot

    def svg(self) -> str:
        from .render.graphs import to_svg

        return to_svg(self.graph())

    def _repr_svg_(self) -> str:
        return self.svg()


# -- hook chains --------------------------------------------------------------------------
@dataclass(frozen=True)
class Callback:
    """One registered hook function (``struct nf_hook_ops``) as a picture shows it."""

    hook: str
    priority: int
    function: str
    owner: str = ""

    @property
    def kind(self) -> str:
        return owner_kind(self.owner, self.function)

    @property
    def label(self) -> str:
        return owner_label(self.owner, self.kind)

    @property
    def conntrack(self) -> bool:
        return self.kind == "conntrack"


@dataclass(frozen=True)
class HookChain(_Graphable):
    """The callbacks of one namespace and family, per hook, in the order they run."""

    machine: str
    family: str
    kernel: str
    backend: str
    lanes: Tuple[Tuple[str, Tuple[Callback, ...]], ...]

    def callbacks(self, hook: str) -> List[Callback]:
        return list(dict(self.lanes).get(hook, ()))

    def all(self) -> List[Callback]:
        return [c for _, cbs in self.lanes for c in cbs]

    def text(self) -> str:
        """The ``list-nf-hooks`` text of this chain."""
        from .render.nfhooks import format_nf_hooks, group_by_priority

        sections = {(self.family, h): group_by_priority((c.priority, c.function) for c in cbs)
                    for h, cbs in self.lanes}
        return format_nf_hooks(sections, hooks=[h for h, _ in self.lanes], families=(self.family,))

    def graph(self):
        from .render.graphs import hooks_graph

        return hooks_graph(self)


def parse_nf_hooks(text: str, machine: str = "vm", family: str = "ipv4", kernel: str = "",
                   backend: str = "") -> HookChain:
    """A ``HookChain`` from ``list-nf-hooks`` text (owners guessed from function names)."""
    lanes: Dict[str, List[Callback]] = {}
    cur = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("🪝"):
            parts = s.split()
            cur = parts[2] if len(parts) >= 3 and parts[1] == family else None
            if cur is not None:
                lanes.setdefault(cur, [])
        elif cur is not None and "→" in s:
            prio, fns = s.split("→", 1)
            for fn in (f.strip() for f in fns.split(",")):
                if fn:
                    lanes[cur].append(Callback(cur, int(prio), fn, ""))
    order = [h for h in HOOKS if h in lanes] + [h for h in lanes if h not in HOOKS]
    return HookChain(machine, family, kernel, backend, tuple((h, tuple(lanes[h])) for h in order))


# -- conntrack entry state ----------------------------------------------------------------
@dataclass(frozen=True)
class CtState:
    """A conntrack entry at one instant."""

    id: int
    machine: str
    state: str          # TCP state: SYN_SENT, ESTABLISHED, ...
    phase: str          # unconfirmed | confirmed | dying | destroyed
    flags: Tuple[str, ...] = ()
    tuple: str = ""

    def short(self) -> str:
        f = "".join(f" [{x}]" for x in self.flags)
        return f"ct#{self.id} {self.state}{f} {self.phase}".replace("  ", " ")


# -- packet paths --------------------------------------------------------------------------
@dataclass(frozen=True)
class PathEvent:
    """One thing that happened to a packet.

    ``kind``: ``send`` (a socket or the widget handed it to ``ip_local_out``), ``hook`` (one
    callback ran: ``verdict`` and the entry's state ``ct`` after it), ``wire`` (the veth
    pair), ``deliver`` (``tcp_v4_rcv``), ``drop`` (``kfree_skb``; ``ct`` is the entry after the
    skb let go of it).
    """

    kind: str
    machine: str
    time: float = 0.0
    hook: str = ""
    priority: int = 0
    function: str = ""
    owner: str = ""
    verdict: str = ""
    ct: Optional[CtState] = None
    detail: str = ""

    @property
    def kind_of_owner(self) -> str:
        return owner_kind(self.owner, self.function)


@dataclass(frozen=True)
class Packet:
    index: int
    flags: str
    saddr: str
    daddr: str
    sport: int
    dport: int
    events: Tuple[PathEvent, ...]

    @property
    def summary(self) -> str:
        return f"{self.flags} {self.saddr}:{self.sport} → {self.daddr}:{self.dport}"

    @property
    def steps(self) -> List[PathEvent]:
        return [e for e in self.events if e.kind == "hook"]

    @property
    def fate(self) -> str:
        """``dropped``, ``delivered``, ``stolen`` or ``in flight``."""
        last = self.events[-1] if self.events else None
        if last is None:
            return "in flight"
        return {"drop": "dropped", "deliver": "delivered"}.get(last.kind, "in flight")

    @property
    def dropped_by(self) -> Optional[PathEvent]:
        for e in self.events:
            if e.kind == "hook" and e.verdict == "DROP":
                return e
        return None


@dataclass(frozen=True)
class PacketPath(_Graphable):
    """What one command's packets met on their way (the sim's ``Stack.record``)."""

    command: str
    output: str
    kernel: str
    packets: Tuple[Packet, ...]
    chains: Tuple[HookChain, ...] = ()
    highlight: Optional[Tuple[int, int]] = None  # (packet index, step index) for the stepper

    def steps(self) -> List[Tuple[Packet, PathEvent]]:
        return [(p, e) for p in self.packets for e in p.steps]

    def at(self, n: Optional[int]) -> PacketPath:
        """The same path with hook step ``n`` (counting over all packets) highlighted."""
        from dataclasses import replace

        if n is None:
            return replace(self, highlight=None)
        seen = 0
        for p in self.packets:
            for i, _ in enumerate(p.steps):
                if seen == n:
                    return replace(self, highlight=(p.index, i))
                seen += 1
        raise IndexError(f"step {n} of {seen}")

    def graph(self):
        from .render.paths import path_graph

        return path_graph(self)


# -- lifecycles ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CtEvent:
    kind: str      # existing | allocated | unconfirmed | confirmed | insert_failed | deleted | destroyed
    time: float
    where: str = ""  # the hook function (or command) it happened in
    stack: Tuple[str, ...] = ()  # innermost first, as a kernel stack prints


@dataclass(frozen=True)
class CtHistory:
    id: int
    machine: str
    tuple: str
    events: Tuple[CtEvent, ...]
    final: CtState

    def kinds(self) -> List[str]:
        return [e.kind for e in self.events]

    @property
    def destroy_stack(self) -> Tuple[str, ...]:
        for e in self.events:
            if e.kind == "destroyed":
                return e.stack
        return ()


@dataclass(frozen=True)
class CtLifecycle(_Graphable):
    command: str
    output: str
    kernel: str
    entries: Tuple[CtHistory, ...]

    def graph(self):
        from .render.paths import lifecycle_graph

        return lifecycle_graph(self)


# -- two kernels side by side ------------------------------------------------------------
@dataclass(frozen=True)
class Comparison(_Graphable):
    """The same scenario on two kernel profiles (``left``/``right``: two ``HookChain``s or
    two ``PacketPath``s); names only one kernel uses are marked."""

    left: object
    right: object

    @property
    def kernel(self) -> str:
        return f"{self.left.kernel} vs {self.right.kernel}"

    def only_left(self) -> List[str]:
        return sorted(_names(self.left) - _names(self.right))

    def only_right(self) -> List[str]:
        return sorted(_names(self.right) - _names(self.left))

    def graph(self):
        from .render.graphs import compare_graph, hooks_graph
        from .render.paths import path_graph

        build = hooks_graph if isinstance(self.left, HookChain) else path_graph
        return compare_graph(self.left, self.right, lambda r, g, p, c: build(r, g=g, prefix=p, changed=c), _names)


def _names(res) -> set:
    if isinstance(res, HookChain):
        return {c.function for c in res.all()}
    return {e.function for p in res.packets for e in p.steps}


@dataclass
class SentPacket:
    """What ``send`` did: the packet's path and the lifecycles, from one observation."""

    path: PacketPath
    lifecycle: CtLifecycle
    errors: List[str] = field(default_factory=list)
