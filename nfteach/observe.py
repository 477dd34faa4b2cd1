"""Structured results from a lab, for pictures and widgets: hook chains, packet paths and
conntrack entry lifecycles.

>>> from nfteach import Lab
>>> from nfteach import observe
>>> with Lab("sim", kernel="5.10") as lab:
...     _ = lab.script("sudo modprobe nf_conntrack enable_hooks=1")
...     [c.function for c in observe.hooks(lab).callbacks("LOCAL_IN")]
['ipv4_confirm']

``hooks`` works on every backend (on ``live``/``vm`` it parses ``list-nf-hooks``);
``path`` and ``lifecycle`` watch the modelled kernel run, so they need the ``sim`` backend.
Every result has ``.dot`` (the Graphviz source), ``.svg()`` and ``_repr_svg_``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .model.errors import LabError

HOOKS = ("PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING")
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


def _sim_kernel(lab, what: str):
    k = getattr(lab.backend, "k", None)
    if lab.backend.name != "sim" or k is None:
        if lab.backend.name == "sim":
            lab.start()
            return lab.backend.k
        raise LabError(f"{what} watches the modelled kernel run: it needs the sim backend "
                       f"(this lab is {lab.backend.name}); hooks() works everywhere")
    return k


def hooks(lab, machine: str = "vm", family: str = "ipv4") -> HookChain:
    """The hook chain of ``machine`` (``vm`` or ``host``) on any backend."""
    lab.start()
    if lab.backend.name == "sim":
        from .sim.kernel.netfilter import HOOK_NAMES

        ns = lab.backend.k.netns(machine)
        lanes = tuple((name, tuple(Callback(name, o.priority, o.hook, o.owner)
                                   for o in ns.nf.entries(family, i)))
                      for i, name in enumerate(HOOK_NAMES))
        return HookChain(machine, family, lab.kernel, "sim", lanes)
    prefix = "@host " if machine == "host" else ""
    r = lab.run(prefix + "sudo list-nf-hooks")
    if r is None or r.status != 0:
        raise LabError(f"list-nf-hooks failed on {lab.backend.name}: {(r.output if r else '').strip()[:200]}")
    return parse_nf_hooks(r.output, machine, family, lab.kernel, lab.backend.name)


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


def _ct_state(ct, machine: str = "") -> CtState:
    from .sim.kernel.conntrack import IPS_ASSURED, IPS_DYING, IPS_SEEN_REPLY

    if ct.use <= 0:
        phase = "destroyed"
    elif ct.status & IPS_DYING:
        phase = "dying"
    else:
        phase = "confirmed" if ct.confirmed else "unconfirmed"
    flags = []
    if not ct.status & IPS_SEEN_REPLY:
        flags.append("UNREPLIED")
    if ct.status & IPS_ASSURED:
        flags.append("ASSURED")
    o = ct.tuple[0]
    return CtState(ct.id, machine or MACHINE_OF_NS.get(ct.net.name, ct.net.name), ct.state_name, phase,
                   tuple(flags), f"{o.src}:{o.sport} → {o.dst}:{o.dport}")


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


def compare(script: str, line: Optional[str] = None, kernels: Tuple[str, str] = ("5.10", "6.18"),
            machine: str = "vm") -> Comparison:
    """Run ``script`` on two sim labs (two kernel profiles); compare the hook chains of
    ``machine``, or, with ``line``, the paths of that command's packets."""
    from .lab import Lab

    out = []
    for k in kernels:
        with Lab("sim", kernel=k) as lab:
            lab.script(script)
            out.append(path(lab, line) if line else hooks(lab, machine))
    return Comparison(out[0], out[1])


# -- running a command under observation --------------------------------------------------
def _session_ports(k) -> Tuple[int, ...]:
    s = getattr(k.stack, "session", None)
    return (s[0].lport,) if s else ()


def _is_session(ports, sport, dport) -> bool:
    return bool(ports) and ({sport, dport} & set(ports)) != set() and 22 in (sport, dport)


def observe(lab, action, command: str = "") -> Tuple[PacketPath, CtLifecycle]:
    """Run ``action()`` (a callable returning output text) on the sim with path recording
    and tracing on; returns what the packets met and what became of conntrack entries."""
    k = _sim_kernel(lab, "observing a packet path")
    rec = _Recorder(k, _session_ports(k))
    with rec:
        out = action() or ""
    chains = tuple(hooks(lab, m) for m in ("host", "vm"))
    packets = rec.packets()
    lc = CtLifecycle(command, out, lab.kernel, rec.histories())
    return PacketPath(command, out, lab.kernel, packets, chains), lc


def _run_line(lab, line: str):
    def action():
        r = lab.run(line)
        return str(r) if r is not None else ""
    return action


def path(lab, line: str) -> PacketPath:
    """Run one lab command on the sim and return each packet's path through the hooks."""
    return observe(lab, _run_line(lab, line), line)[0]


def lifecycle(lab, line: str) -> CtLifecycle:
    """Run one lab command on the sim and return the life of each conntrack entry it touched."""
    return observe(lab, _run_line(lab, line), line)[1]


@dataclass
class SentPacket:
    """What ``send`` did: the packet's path and the lifecycles, from one observation."""

    path: PacketPath
    lifecycle: CtLifecycle
    errors: List[str] = field(default_factory=list)


def send(lab, machine: str, saddr: str, daddr: str, sport: int, dport: int, flags: str = "S",
         seq: int = 1000, ack: int = 0) -> SentPacket:
    """Inject one TCP segment on the sim: built as an skb and handed to ``ip_local_out`` of
    ``machine``'s namespace, then the kernel settles (replies and all). ``flags`` uses
    tcpdump letters: ``S`` SYN, ``.`` ACK, ``F`` FIN, ``R`` RST, ``P`` PSH."""
    from .sim.kernel.skb import ACK, FIN, PSH, RST, SYN, SYN_OPTIONS_LEN, Skb

    bits = {"S": SYN, ".": ACK, "A": ACK, "F": FIN, "R": RST, "P": PSH}
    f = 0
    for ch in flags:
        if ch not in bits:
            raise LabError(f"unknown TCP flag {ch!r} (S . F R P)", token=ch)
        f |= bits[ch]
    k = _sim_kernel(lab, "sending a packet")
    ns = k.netns(machine)
    shown = f"send {flags} {saddr}:{sport} → {daddr}:{dport} from {machine}"

    def action():
        skb = Skb(saddr, daddr, sport, dport, f, seq, ack if f & ACK else 0, 0,
                  SYN_OPTIONS_LEN if f & SYN else 12)
        k.stack.ip_local_out(ns, skb)
        k.settle()
        return ""
    p, lc = observe(lab, action, shown)
    return SentPacket(p, lc)


class _Recorder:
    """Listens to the sim's tracer and ``Stack.record`` while a command runs.

    The tracer reports each hook callback's exit just before ``nf_hook`` appends its record
    (namespace, hook, verdict) to ``Stack.packets``: the n-th callback exit and the n-th
    record are the same call, which is how a step gets both its verdict and the entry's
    state right after it.
    """

    def __init__(self, k, session_ports):
        self.k = k
        self.ports = session_ports
        self.free_fn = k.profile.fn("free_skb") or "kfree_skb"
        self.confirm_fn = k.profile.fn("confirm_core") or "__nf_conntrack_confirm"
        self.destroy_fn = k.profile.fn("destroy") or "destroy_conntrack"
        self.addr = {ns.addr: MACHINE_OF_NS.get(name, name) for name, ns in k.namespaces.items() if ns.addr}
        self.frames: List[dict] = []   # args of the open traced calls
        self.timeline: List[list] = []  # [kind, machine, time, skb, extra...]
        self.cts: Dict[int, object] = {}
        self.hist: Dict[int, List[CtEvent]] = {}
        self.where: Dict[int, str] = {}
        self.pending: Dict[str, tuple] = {}
        self.drops: Dict[int, object] = {}

    # -- setup ----------------------------------------------------------------------------
    def __enter__(self):
        st = self.k.stack
        self.was_recording, self.start = st.record, len(st.packets)
        st.record = True
        for ns in self.k.namespaces.values():
            if ns.ct is not None:
                for ct in ns.ct.entries() + [c for lst in ns.ct.unconfirmed for c in lst]:
                    self._track(ct, "existing", "")
        self.k.tracer.listeners.append(self._on)
        return self

    def __exit__(self, *exc):
        self.k.tracer.listeners.remove(self._on)
        st = self.k.stack
        self.records = list(st.packets[self.start:])
        st.record = self.was_recording
        if not self.was_recording:
            del st.packets[self.start:]
        return False

    def _track(self, ct, kind: str, where: str, stack=()) -> None:
        if ct.id not in self.cts:
            self.cts[ct.id] = ct
            self.hist[ct.id] = []
        self.hist[ct.id].append(CtEvent(kind, self.k.now, where, tuple(stack)))

    def _session(self, sport, dport) -> bool:
        return _is_session(self.ports, sport, dport)

    def _skb(self):
        for a in reversed(self.frames):
            if "skb" in a:
                return a["skb"]
        return None

    def _hookfn(self) -> str:
        for a in reversed(self.frames):
            if "priority" in a and "owner" in a:
                return a.get("_name", "")
        return ""

    def _kstack(self):
        return tuple(reversed(self.k.tracer.stack))

    # -- the listener ---------------------------------------------------------------------
    def _on(self, ev) -> None:
        name, args = ev.function, ev.args
        if ev.kind == "entry":
            a = dict(args)
            a["_name"] = name
            self.frames.append(a)
            self._entry(name, args)
        else:
            self._exit(name, args)
            if self.frames:
                self.frames.pop()

    def _entry(self, name, args) -> None:
        skb = args.get("skb")
        now = self.k.now
        if name == "__ip_local_out" and skb is not None:
            st = self.k.tracer.stack
            origin = st[-2] if len(st) >= 2 else "socket"
            self.timeline.append(["send", self.addr.get(skb.saddr, "?"), now, skb, origin])
        elif name == "ip_rcv" and skb is not None:
            m = self.addr.get(skb.daddr) or {"vm": "host", "host": "vm"}.get(self.addr.get(skb.saddr, ""), "?")
            self.timeline.append(["wire", m, now, skb, "veth"])
        elif name == "tcp_v4_rcv" and skb is not None:
            self.timeline.append(["deliver", self.addr.get(skb.daddr, "?"), now, skb, "tcp_v4_rcv"])
        elif name == self.free_fn and skb is not None and hasattr(skb, "saddr"):  # not AF_UNIX skbs
            self.drops[id(skb)] = skb.nfct
            reason = str(args.get("reason", ""))
            self.timeline.append(["drop", "?", now, skb, reason, None])
        elif name == "init_conntrack":
            self.pending["alloc"] = (self._kstack(), self._hookfn())
        elif name == self.confirm_fn:
            skb = self._skb()
            self.pending["confirm"] = skb.nfct if skb is not None else None
        elif name in ("nf_ct_delete", self.destroy_fn):
            self.pending[name] = (self._kstack(), self._hookfn() or "")

    def _exit(self, name, args) -> None:
        skb = args.get("skb")
        if "priority" in args and "owner" in args and skb is not None:
            ct = skb.nfct
            self.timeline.append(["hook", "?", self.k.now, skb, name, _ct_state(ct) if ct is not None else None])
        elif name == self.free_fn and skb is not None and hasattr(skb, "saddr"):
            ct = self.drops.pop(id(skb), None)
            for item in reversed(self.timeline):
                if item[0] == "drop" and item[3] is skb:
                    item[5] = _ct_state(ct) if ct is not None else None
                    break
        elif name == "nf_ct_add_to_unconfirmed_list":
            stack, where = self.pending.pop("alloc", ((), ""))
            for ns in self.k.namespaces.values():
                for lst in (ns.ct.unconfirmed if ns.ct is not None else ()):
                    for ct in lst:
                        if ct.id not in self.cts:
                            self._track(ct, "allocated", where, stack)
                            self._track(ct, "unconfirmed", where)
        elif name == self.confirm_fn:
            ct = self.pending.pop("confirm", None)
            if ct is not None:
                self._track(ct, "confirmed" if ct.confirmed else "insert_failed", self._hookfn())
        elif name in ("nf_ct_delete", self.destroy_fn):
            stack, where = self.pending.pop(name, ((), ""))
            if name == self.destroy_fn:
                # nf_ct_delete -> nf_ct_put -> destroy: the delete comes first in the story
                self._mark("deleted", *self.pending.get("nf_ct_delete", ((), "")))
                self._mark("destroyed", stack, where)
            else:
                self._mark("deleted", stack, where)

    def _mark(self, kind: str, stack, where) -> None:
        for cid, ct in self.cts.items():
            done = any(e.kind == kind for e in self.hist[cid])
            hit = (ct.status & (1 << 9)) if kind == "deleted" else ct.use <= 0
            if hit and not done:
                self._track(ct, kind, where, stack)

    # -- results --------------------------------------------------------------------------
    def packets(self) -> Tuple[Packet, ...]:
        from .sim.kernel.netfilter import HOOK_NAMES, VERDICT_NAMES

        recs = iter(self.records)
        built: List[dict] = []
        by_skb: Dict[int, dict] = {}
        for kind, machine, t, skb, *extra in self.timeline:
            ev = None
            if kind == "hook":
                _, ns_name, hooknum, ops, verdict, _skb = next(recs)
                ev = PathEvent("hook", MACHINE_OF_NS.get(ns_name, ns_name), t, HOOK_NAMES[hooknum],
                               ops.priority, ops.hook, ops.owner, VERDICT_NAMES.get(verdict, str(verdict)),
                               extra[1])
            if self._session(skb.sport, skb.dport):
                continue
            pkt = by_skb.get(id(skb))
            if pkt is None and kind == "wire":
                key = (skb.saddr, skb.daddr, skb.sport, skb.dport, skb.flags, skb.seq)
                for cand in reversed(built):
                    if cand["key"] == key and cand["events"][-1].kind not in ("deliver", "drop"):
                        pkt = cand
                        break
            if pkt is None:
                pkt = {"key": (skb.saddr, skb.daddr, skb.sport, skb.dport, skb.flags, skb.seq),
                       "skb": skb, "events": []}
                built.append(pkt)
            by_skb[id(skb)] = pkt
            if ev is None:
                if machine == "?":
                    machine = pkt["events"][-1].machine if pkt["events"] else "?"
                ct = extra[1] if kind == "drop" else None
                ev = PathEvent(kind, machine, t, detail=str(extra[0]), ct=ct)
            pkt["events"].append(ev)
        out = []
        for i, p in enumerate(built):
            s = p["skb"]
            out.append(Packet(i, s.flag_names(), s.saddr, s.daddr, s.sport, s.dport, tuple(p["events"])))
        return tuple(out)

    def histories(self) -> Tuple[CtHistory, ...]:
        out = []
        for cid, ct in self.cts.items():
            evs = self.hist[cid]
            o = ct.tuple[0]
            if [e.kind for e in evs] == ["existing"] or self._session(o.sport, o.dport):
                continue
            st = _ct_state(ct)
            out.append(CtHistory(cid, st.machine, st.tuple, tuple(evs), st))
        return tuple(out)
