"""How fast could the simulator's accept path be in CPython? Two flattened copies of it, side by side.

``bench/sim_syn.py`` measures the model: ``Stack.ip_rcv`` and the ~28 Python functions an
accepted SYN passes through (each named after the kernel function it models, each able to
open a trace frame). This script runs the same prebuilt SYNs, in the same process, through

* ``model``: ``Stack.ip_rcv``, as ``sim_syn`` does;
* ``inlined``: what an automatic inliner of the untraced branch could leave: every call
  whose target is known before the packet arrives written out in place, the rest kept
  (the hook functions called through the namespace's hook entries, ``tcp_new``,
  ``tcp_packet``, the ``nf_conn`` constructor, ``skb_release``, the tracing checks);
* ``flat``: one function, no calls but the ``nf_conn`` constructor and the nft rule: no
  hook entries walked through their functions, no tracing checks. Not a model any more:
  the upper bound of any rewrite of this path in CPython.

Each copy must leave the table exactly as the model does (every entry's tuples, status,
TCP state, timeout, counters, event cache): the run fails otherwise. These copies exist
only here, to measure; nothing in the package uses them.

    python bench/sim_ceiling.py [N] [ROUNDS]     # one JSON line: best SYN/s of each
"""
from __future__ import annotations

import gc
import json
import sys
import time
from typing import Callable, Dict

from sim_syn import PORTS, make_lab, syn_skbs

from nfteach.sim.kernel.netfilter import LOCAL_IN, NF_ACCEPT, NF_DROP, PRE_ROUTING
from nfteach.sim.kernel.nf_conn import (
    IPCT_NEW,
    IPCT_PROTOINFO,
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_SEEN_REPLY,
    NfConn,
)
from nfteach.sim.kernel.skb import FIN, IP_CT_NEW, IP_CT_UNTRACKED, IPPROTO_TCP, SYN
from nfteach.sim.kernel.tcp_ct import tcp_new, tcp_packet


def _inlined(k, ns) -> Callable:
    cm, tr = k.conntrack, k.tracer
    nct, nf = ns.ct, ns.nf
    table, unconf = nct.table, nct.unconfirmed
    socks, listeners = k.stack.socks, k.stack.listeners

    def conntrack_in(skb, state):
        if not cm.tracer.listeners:
            if skb.nfct is not None or skb.ctinfo == IP_CT_UNTRACKED or skb.protocol != IPPROTO_TCP:
                return NF_ACCEPT
            t = (skb.saddr, skb.daddr, skb.protocol, skb.sport, skb.dport)
            ct = table.get(t)
            if ct is not None:
                raise RuntimeError("a new tuple was found: not the accept benchmark")
            nct.count += 1
            mx = cm.nf_conntrack_max
            if mx and nct.count > mx:
                return NF_DROP
            ct = NfConn(ns, t, k.cpu)
            ct.tcp_init(tcp_new(skb, cm.tcp_loose))
            ct.use = 1
            unconf[ct.cpu].append(ct)
            ct.on_unconfirmed = True
            skb.nfct, skb.ctinfo = ct, IP_CT_NEW
            status, old = ct.status, ct.state
            verdict, timeout, actions = tcp_packet(ct, skb, 0, status & IPS_SEEN_REPLY, status & IPS_ASSURED)
            if ct.state != old and cm._ecache and cm.event_cb:
                ct.ecache |= 1 << IPCT_PROTOINFO
            ct.timeout = timeout
            ct.packets_orig += 1
            ct.bytes_orig += skb.len
            return NF_ACCEPT

    def confirm(skb, state):
        if not cm.tracer.listeners:
            ct = skb.nfct
            if not ct.status & IPS_CONFIRMED:
                lst = unconf[ct.cpu]
                if ct in lst:
                    lst.remove(ct)
                ct.on_unconfirmed = False
                if table.setdefault(ct.orig, ct) is not ct or table.setdefault(ct.reply, ct) is not ct:
                    raise RuntimeError("insert failed: not the accept benchmark")
                ct.timeout += k.now
                ct.use += 1
                ct.status |= IPS_CONFIRMED
                nct.stat["insert"] += 1
                if cm._ecache and cm.event_cb:
                    ct.ecache |= 1 << IPCT_NEW
            if cm._ecache and ct.ecache and cm.event_cb:
                ct.ecache = 0
            return NF_ACCEPT

    mine = {"conntrack_in": conntrack_in, "confirm": confirm}
    fns = {id(o): next((f for key, f in mine.items() if key in o.hook), o.fn)
           for h in (PRE_ROUTING, LOCAL_IN) for o in nf.hooks_ipv4[h] if o.fn is not None}

    def rcv(skb):
        if not tr.listeners:
            skb.dev = "eth0"
            for hook in (PRE_ROUTING, LOCAL_IN):
                state = nf.states_ipv4[hook]
                for ops in nf.hooks_ipv4[hook]:
                    fn = fns.get(id(ops))
                    if fn is not None and fn(skb, state) != NF_ACCEPT:
                        raise RuntimeError("dropped: not the accept benchmark")
                if hook == PRE_ROUTING and skb.daddr != ns.addr:
                    raise RuntimeError("not for this namespace")
            socks.get((ns.name, skb.daddr, skb.dport, skb.saddr, skb.sport))
            listeners.get((ns.name, skb.dport))
            cm.skb_release(skb)
            skb.freed = "consumed"
    return rcv


def _flat(k, ns) -> Callable:
    from nfteach.sim.kernel.nftables import _compile_rule
    from nfteach.sim.kernel.tcp_ct import (
        _FLAG_BITS,
        CONNTRACK_INDEX,
        TCP_CONNTRACKS,
        TCP_TIMEOUTS,
    )

    cm = k.conntrack
    nct = ns.ct
    table, unconf = nct.table, nct.unconfirmed
    socks, listeners = k.stack.socks, k.stack.listeners
    rules = [r.fast or _compile_rule(r) for r in ns.nft.tables[("ip", "filter")].chains["input"].rules]

    def rcv(skb):
        skb.dev = "eth0"
        t = (skb.saddr, skb.daddr, skb.protocol, skb.sport, skb.dport)
        if table.get(t) is not None:
            raise RuntimeError("a new tuple was found: not the accept benchmark")
        nct.count += 1
        mx = cm.nf_conntrack_max
        if mx and nct.count > mx:
            raise RuntimeError("table full: not the accept benchmark")
        ct = NfConn(ns, t, k.cpu)
        lst = unconf[ct.cpu]
        lst.append(ct)
        flags = skb.flags
        idx = CONNTRACK_INDEX[flags & _FLAG_BITS]
        st = TCP_CONNTRACKS[0][idx][0]
        seq = skb.seq
        end = seq + skb.payload + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        ct.end_orig, ct.end_reply, ct.flags_orig, ct.flags_reply = end, 0, 0, 0
        ct.last_index, ct.last_dir, ct.last_seq, ct.last_end, ct.retrans = idx, 0, seq, end, 0
        new = TCP_CONNTRACKS[0][idx][st]
        ct.state = new
        ct.packets_orig = 1
        ct.bytes_orig = 40 + skb.options_len + skb.payload
        for rule in rules:
            v = rule(skb)
            if v is not None:
                break
        if v[0] != "accept":
            raise RuntimeError("dropped: not the accept benchmark")
        lst.remove(ct)
        if table.setdefault(t, ct) is not ct or table.setdefault(ct.reply, ct) is not ct:
            raise RuntimeError("insert failed: not the accept benchmark")
        ct.timeout = TCP_TIMEOUTS[new] + k.now
        ct.status = IPS_CONFIRMED
        ct.use = 1  # the table's reference (the skb's is taken and put back within this call)
        nct.stat["insert"] += 1
        socks.get((ns.name, skb.daddr, skb.dport, skb.saddr, skb.sport))
        listeners.get((ns.name, skb.dport))
        skb.freed = "consumed"
    return rcv


def _entries(ns):
    return [(ct.orig, ct.reply, ct.status, ct.state, ct.timeout, ct.use, ct.counters, ct.ecache, ct.end, ct.flags,
             ct.last_index, ct.last_dir, ct.last_seq, ct.last_end, ct.retrans, ct.on_unconfirmed)
            for ct in ns.ct.confirmed()]


def run(variant: str, n: int):
    """(SYN/s, the entries it left) for one fresh lab."""
    lab = make_lab()
    try:
        k = lab.backend.k
        ns = k.netns("vm")
        skbs = syn_skbs(n, PORTS["accept"])
        gc.collect()
        gc.freeze()
        if variant == "model":  # as sim_syn times it
            ip_rcv = k.stack.ip_rcv
            t0 = time.perf_counter()
            for skb in skbs:
                ip_rcv(ns, skb)
        else:
            rcv = {"inlined": _inlined, "flat": _flat}[variant](k, ns)
            t0 = time.perf_counter()
            for skb in skbs:
                rcv(skb)
        dt = time.perf_counter() - t0
        gc.unfreeze()
        if any(u for u in ns.ct.unconfirmed) or any(s.nfct is not None for s in skbs):
            raise RuntimeError(f"{variant}: entries left unconfirmed or held by an skb")
        return n / dt, _entries(ns)
    finally:
        lab.close()


def measure(n: int, rounds: int = 3) -> Dict:
    """Best SYN/s of each variant over ``rounds`` (each round: model, inlined, flat, one fresh
    lab each), after checking on 1000 SYNs that each copy leaves the model's entries."""
    best: Dict[str, float] = {}
    for _ in range(rounds):
        _, want = run("model", 1000)
        for variant in ("model", "inlined", "flat"):
            rate, _ = run(variant, n)
            best[variant] = max(best.get(variant, 0.0), rate)
            _, got = run(variant, 1000)
            if got != want:
                first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                raise RuntimeError(f"{variant} leaves other entries than the model (first difference: entry {first})")
    return {"n": n, "rounds": rounds, **{f"{v}_syn_per_s": best[v] for v in best}}


def main(argv) -> int:
    n = int(argv[1]) if len(argv) > 1 else 50000
    rounds = int(argv[2]) if len(argv) > 2 else 3
    r = measure(n, rounds)
    print(json.dumps({**r, "inlined_vs_model": round(r["inlined_syn_per_s"] / r["model_syn_per_s"], 2),
                      "flat_vs_model": round(r["flat_syn_per_s"] / r["model_syn_per_s"], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
