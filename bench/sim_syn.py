"""Simulator throughput: new TCP SYNs per second through the modelled IPv4 path.

Conntrack is on (``modprobe nf_conntrack enable_hooks=1``); each SYN is a fresh tuple, so
every packet goes ``ip_rcv`` -> PRE_ROUTING (defrag, ``nf_conntrack_in`` ->
``init_conntrack``) -> routing -> LOCAL_IN (nft chain, ``ipv4_confirm``) and then either

* ``accept``: an nft ``counter accept`` rule, the entry is confirmed (inserted into the
  hash table) and the SYN reaches a ``blackhole`` listener that ignores it, or
* ``drop``: an nft ``counter drop`` rule (filter/INPUT), ``kfree_skb`` frees the
  unconfirmed entry.

Skbs are built before the clock starts and handed to ``Stack.ip_rcv`` one by one (no
sockets, no timers), so this measures the modelled kernel path only. Each run has a fresh
lab; the previous run's lab is garbage-collected before the clock starts (otherwise the
timed loop pays for collecting its 10^4-10^5 entries), and what is left (the new lab and the
prebuilt SYNs, ~70k objects) is frozen (``gc.freeze``) until the clock stops, so the full
collections the loop's new entries trigger walk the entries, not the benchmark's input.
With ``trace=True``
a tracer listener is attached, which turns every modelled function's entry/exit event on.

    python bench/sim_syn.py 20000          # prints one JSON line per case
"""
from __future__ import annotations

import gc
import json
import sys
import time
from typing import Dict, List

from nfteach import Lab
from nfteach.sim.kernel.skb import SYN, SYN_OPTIONS_LEN, Skb

VM_ADDR = "192.168.122.204"
PORTS = {"accept": 2571, "drop": 2570}
SETUP = [
    "sudo modprobe nf_conntrack enable_hooks=1",
    "sudo sysctl -w net.netfilter.nf_conntrack_max=0",  # 0: no limit (this measures speed, not table full)
    "sudo nft add table ip filter",
    "sudo nft add chain ip filter input { type filter hook input priority 0 \\; }",
    "sudo nft add rule ip filter input tcp dport 2570 counter drop",
    "sudo nft add rule ip filter input tcp dport 2571 counter accept",
]


def make_lab(kernel: str = "5.10") -> Lab:
    lab = Lab("sim", kernel=kernel).start()
    for line in SETUP:
        r = lab.run(line)
        if r.status != 0:
            raise RuntimeError(f"setup failed: {line}: {r.output.strip()}")
    k = lab.backend.k
    k.stack.listeners[(k.netns("vm").name, PORTS["accept"])] = "blackhole"
    return lab


def syn_skbs(n: int, dport: int, offset: int = 0) -> List[Skb]:
    """``n`` SYNs from distinct sources (10.0.0.0/8 x ports): each one a new conntrack tuple."""
    out = []
    for j in range(offset, offset + n):
        src = f"10.{(j >> 16) & 255}.{(j >> 8) & 255}.{j & 255}"
        out.append(Skb(src, VM_ADDR, 1024 + j % 60000, dport, SYN, seq=j * 7919, options_len=SYN_OPTIONS_LEN))
    return out


def counter(lab: Lab, dport: int) -> int:
    text = lab.run("sudo nft list chain ip filter input").output
    for line in text.splitlines():
        if f"dport {dport} counter packets" in line:
            return int(line.split("packets")[1].split()[0])
    raise RuntimeError(f"no counter for dport {dport} in:\n{text}")


def measure(n: int, verdict: str, trace: bool, kernel: str = "5.10", repeat: int = 3) -> Dict:
    """Best of ``repeat`` runs of ``n`` SYNs; a fresh lab per run."""
    best = None
    for _ in range(repeat):
        lab = make_lab(kernel)
        k = lab.backend.k
        ns = k.netns("vm")
        dport = PORTS[verdict]
        events = [0]
        if trace:
            def listen(ev, events=events):
                events[0] += 1
            k.tracer.listeners.append(listen)
        before_count = ns.ct.count
        skbs = syn_skbs(n, dport)
        rcv = k.stack.ip_rcv
        gc.collect()  # the previous run's lab (cyclic garbage) goes now, not during the timed loop
        gc.freeze()  # the lab as set up and the n prebuilt SYNs: the loop's collections skip them
        t0 = time.perf_counter()
        for skb in skbs:
            rcv(ns, skb)
        dt = time.perf_counter() - t0
        gc.unfreeze()
        k.tracer.listeners.clear()
        seen = counter(lab, dport)
        entries = ns.ct.count - before_count
        lab.close()
        if seen != n:
            raise RuntimeError(f"nft counter saw {seen} of {n} SYNs")
        want = n if verdict == "accept" else 0
        if entries != want:
            raise RuntimeError(f"{verdict}: {entries} new conntrack entries, expected {want}")
        res = {"case": f"{verdict}, trace {'on' if trace else 'off'}", "n": n, "seconds": dt,
               "syn_per_s": n / dt, "entries_left": entries, "trace_events_per_syn": events[0] / n}
        if best is None or res["syn_per_s"] > best["syn_per_s"]:
            best = res
    return best


def main(argv: List[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 20000
    for verdict in ("accept", "drop"):
        for trace in (False, True):
            print(json.dumps(measure(n, verdict, trace)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
