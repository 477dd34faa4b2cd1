"""vm lab start, cold boot against restored, side by side: wall time from ``Lab(...)`` to the
first command's output (``uname -r``), per kernel.

    python bench/vm_start.py                      # 5.10 and 6.1, 5 rounds each
    python bench/vm_start.py --kernel 6.1 --rounds 9 --out /tmp/vm_start.json

Each round starts one cold-booted lab (``VmBackend(restore=False)``) and one restored lab
(the saved, booted guest of ``nfteach/vm/saved.py``), in alternating order (cold first in
even rounds), so both see the same machine load; the saved state is made (or found) before
the first round and is not timed. Quote medians: the machine may be shared and noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

LINE = "uname -r"


def _one(kernel: str, restore: bool) -> Dict:
    from nfteach import Lab
    from nfteach.vm.backend import VmBackend

    backend = VmBackend(kernel=kernel, build=False, restore=restore)
    t0 = time.perf_counter()
    lab = Lab(backend)
    try:
        r = lab.run(LINE)
        seconds = time.perf_counter() - t0
        ok = r.status == 0 and r.output.startswith(kernel + ".")
        return {"seconds": seconds, "ok": ok, "mode": backend.start_mode, "accel": backend.qemu.accel.name,
                "release": backend.release}
    finally:
        lab.close()


def _summary(xs: List[float]) -> Dict:
    return {"median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs), "runs": xs}


def measure(kernel: str, rounds: int = 5) -> Dict:
    """Cold boot and restored lab start of ``kernel``, ``rounds`` of each, interleaved."""
    from nfteach.vm import saved

    if saved.cold_only():
        return {"skipped": f"not measured: {saved.ENV_COLD} is set"}
    first = _one(kernel, True)  # makes (or finds) the saved state; not timed
    if not first["mode"].startswith("restored"):
        return {"skipped": f"not measured: no saved guest ({first['mode']})"}
    cold: List[float] = []
    restored: List[float] = []
    bad = []
    for i in range(rounds):
        for restore in ((False, True) if i % 2 == 0 else (True, False)):
            r = _one(kernel, restore)
            (restored if restore else cold).append(r["seconds"])
            if not r["ok"] or r["mode"].startswith("restored") != restore:
                bad.append(r)
    out = {"cold": _summary(cold), "restored": _summary(restored), "accel": first["accel"],
           "release": first["release"], "failures": bad,
           "pair_ratio_median": statistics.median(r / c for r, c in zip(restored, cold))}
    out["ratio_of_medians"] = out["restored"]["median_s"] / out["cold"]["median_s"]
    return out


def rows(res: Dict) -> List[tuple]:
    """Table rows (benchmark, measured, target, met) for bench/run.py's table."""
    out = []
    for k, d in res.items():
        if "skipped" in d:
            out.append((f"vm {k}: lab start", d["skipped"], "-", ""))
            continue
        c, r = d["cold"], d["restored"]
        n = len(c["runs"])
        out.append((f"vm lab start, cold boot, {k} (to the first output; median of {n})",
                    f"{c['median_s']:.2f} s ({c['min_s']:.1f}-{c['max_s']:.1f})", "-", ""))
        out.append((f"vm lab start, restored, {k} (to the first output; median of {n})",
                    f"{r['median_s']:.2f} s ({r['min_s']:.1f}-{r['max_s']:.1f})", "<= 1.5 s",
                    "yes" if r["median_s"] <= 1.5 else "no"))
        out.append((f"vm lab start, restored/cold, {k} (median of pair ratios)", f"{d['pair_ratio_median']:.0%}",
                    "<= 25 %", "yes" if d["pair_ratio_median"] <= 0.25 else "no"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", action="append", help="kernel (repeatable; default 5.10 and 6.1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = ap.parse_args(argv)
    res = {"loadavg_at_start": os.getloadavg(), "started": time.time()}
    res["kernels"] = {k: measure(k, args.rounds) for k in args.kernel or ["5.10", "6.1"]}
    res["loadavg_at_end"] = os.getloadavg()
    from machine import md_table

    res["table"] = "\n".join(md_table(("benchmark", "measured", "target", "met"), rows(res["kernels"])))
    text = json.dumps(res, indent=1) + "\n"
    if args.out:
        args.out.write_text(text)
    print(res["table"])
    print(f"load average {res['loadavg_at_start'][0]:.2f} at start, {res['loadavg_at_end'][0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
