"""Recording what the packets of one command meet on the modelled kernel: listens to the
kernel's tracer and ``Stack.record`` (used by :func:`nfteach.observe.observe`)."""
from __future__ import annotations

from typing import Dict, List, Tuple

from ..observations import MACHINE_OF_NS, CtEvent, CtHistory, CtState, Packet, PathEvent
from .kernel.conntrack import IPS_ASSURED, IPS_DYING, IPS_SEEN_REPLY
from .kernel.netfilter import HOOK_NAMES, VERDICT_NAMES


def ct_state(ct, machine: str = "") -> CtState:
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


# -- running a command under observation --------------------------------------------------
def session_ports(k) -> Tuple[int, ...]:
    s = getattr(k.stack, "session", None)
    return (s[0].lport,) if s else ()


def _is_session(ports, sport, dport) -> bool:
    return bool(ports) and ({sport, dport} & set(ports)) != set() and 22 in (sport, dport)


class Recorder:
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
            self.timeline.append(["hook", "?", self.k.now, skb, name, ct_state(ct) if ct is not None else None])
        elif name == self.free_fn and skb is not None and hasattr(skb, "saddr"):
            ct = self.drops.pop(id(skb), None)
            for item in reversed(self.timeline):
                if item[0] == "drop" and item[3] is skb:
                    item[5] = ct_state(ct) if ct is not None else None
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
            st = ct_state(ct)
            out.append(CtHistory(cid, st.machine, st.tuple, tuple(evs), st))
        return tuple(out)
