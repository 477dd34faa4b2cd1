"""Memory per conntrack entry in the simulator, at ``n`` confirmed entries.

Entries are made the way the kernel makes them: a SYN through ``ip_rcv`` with conntrack
on and no rule, to a ``blackhole`` listener, so each one is an ``NfConn`` confirmed in the
hash table (two tuples, bucket lists, TCP state). ``nf_conntrack_max`` is raised above
``n``. Two measurements, run in a fresh process each:

* ``rss``: resident set size after minus before (``/proc/self/statm``), divided by ``n``;
* ``tracemalloc``: bytes Python allocated and still holds, divided by ``n``, with the top
  allocation sites (slower; use a smaller ``n``).

    python bench/sim_mem.py rss 1000000
    python bench/sim_mem.py tracemalloc 100000
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sim_syn import PORTS, make_lab, syn_skbs  # noqa: E402

CHUNK = 20000


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fill(n: int, trace_malloc: bool = False) -> dict:
    lab = make_lab("5.10")
    k = lab.backend.k
    k.conntrack.nf_conntrack_max = n + 1000
    ns = k.netns("vm")
    gc.collect()
    if trace_malloc:
        import tracemalloc

        tracemalloc.start(1)
        snap0 = tracemalloc.take_snapshot()
    base_rss = rss_bytes()
    base_count = ns.ct.count
    t0 = time.perf_counter()
    for off in range(0, n, CHUNK):
        # build and drop skbs chunk by chunk: only what the table keeps stays allocated
        for skb in syn_skbs(min(CHUNK, n - off), PORTS["accept"], off):
            k.stack.ip_rcv(ns, skb)
    dt = time.perf_counter() - t0
    gc.collect()
    made = ns.ct.count - base_count
    if made != n:
        raise RuntimeError(f"{made} entries made, expected {n}")
    res = {"n": n, "fill_seconds": dt, "fill_per_s": n / dt}
    res["rss_per_entry"] = (rss_bytes() - base_rss) / n
    if trace_malloc:
        snap = tracemalloc.take_snapshot()
        stats = snap.compare_to(snap0, "lineno")
        total = sum(s.size_diff for s in stats)
        res["traced_per_entry"] = total / n
        res["top"] = [
            {"site": f"{os.path.relpath(s.traceback[0].filename)}:{s.traceback[0].lineno}",
             "bytes_per_entry": round(s.size_diff / n, 1)}
            for s in stats[:8]
        ]
        tracemalloc.stop()
    return res


def main(argv) -> int:
    mode = argv[1] if len(argv) > 1 else "rss"
    n = int(argv[2]) if len(argv) > 2 else 100000
    print(json.dumps(fill(n, trace_malloc=(mode == "tracemalloc"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
