"""nfteach benchmarks: one table on stdout, every number in ``bench/results.json``.

    python bench/run.py            # full (several minutes; boots the vm kernels if cached)
    python bench/run.py --quick    # CI smoke: small N, no vm boot
    python bench/run.py --no-vm --no-live

Benchmarks, not tests: nothing here fails on a slow machine. A target that is not met is
reported as "no" in the table; a part that cannot run here says why ("not measured: ...").
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import course  # noqa: E402
import live_syn  # noqa: E402
import sim_ceiling  # noqa: E402
import sim_syn  # noqa: E402
import vm_start  # noqa: E402
from machine import machine, md_table  # noqa: E402

TARGETS = {
    "sim_syn_per_s": 100_000,
    "sim_live_ratio": 1.0,
    "bytes_per_entry": 1024,
    "import_s": 0.300,
}


def _mem(mode: str, n: int) -> Dict:
    p = subprocess.run([sys.executable, str(HERE / "sim_mem.py"), mode, str(n)],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def run(args) -> Dict:
    quick = args.quick
    res: Dict = {"mode": "quick" if quick else "full", "machine": machine(), "started": time.time()}
    n_sim = 2000 if quick else 50_000
    n_live = 2000 if quick else 200_000
    say = (lambda m: None) if args.quiet else (lambda m: print(f"bench: {m}", file=sys.stderr, flush=True))

    why = "--no-live" if args.no_live else live_syn.why_not()
    rounds = 1 if quick else 3
    # sim/live is a ratio of two rates on a shared machine whose load drifts within minutes:
    # each round measures one verdict on sim (one run) and right after it on live, and the
    # ratio is the median over the rounds of each round's own sim/live (pair by pair); the
    # rates shown are each side's best round
    say(f"sim SYN throughput, {n_sim} SYNs per case" + ("" if why else f"; live SYN injection, {n_live} SYNs per case"))
    sim_best: Dict[str, Dict] = {}
    live_best: Dict[str, Dict] = {}
    pairs: List[Dict] = []

    def keep(best: Dict[str, Dict], r: Dict) -> None:
        if r["case"] not in best or r["syn_per_s"] > best[r["case"]]["syn_per_s"]:
            best[r["case"]] = r

    for i in range(rounds):
        for v in ("accept", "drop"):
            s = sim_syn.measure(n_sim, v, False, repeat=1)
            keep(sim_best, s)
            if not why:
                [lv] = live_syn.measure(n_live, verdicts=(v,))
                keep(live_best, lv)
                pairs.append({"round": i + 1, "case": s["case"], "sim": s["syn_per_s"], "live": lv["syn_per_s"],
                              "ratio": s["syn_per_s"] / lv["syn_per_s"]})
    for v in ("accept", "drop"):
        keep(sim_best, sim_syn.measure(n_sim, v, True, repeat=rounds))
    res["sim_syn"] = [sim_best[f"{v}, trace {t}"] for v in ("accept", "drop") for t in ("off", "on")]
    res["live_syn"] = {"skipped": f"not measured: {why}"} if why else list(live_best.values())
    res["sim_live_rounds"] = pairs
    say("the accept path's ceiling in CPython: the model, an inlined copy, a flat copy (bench/sim_ceiling.py)")
    res["sim_ceiling"] = sim_ceiling.measure(n_sim, rounds)

    n_mem = 10_000 if quick else 1_000_000
    say(f"memory per conntrack entry at {n_mem} entries")
    res["memory"] = {"rss": _mem("rss", n_mem), "tracemalloc": _mem("tracemalloc", 5000 if quick else 100_000)}

    say("import time")
    res["import"] = course.import_time(repeat=3 if quick else 7)
    say("scenarios on every sim profile")
    res["course_sim"] = course.scenarios_on_sim()
    say("nfteach tour")
    res["tour"] = course.tour()
    res["vm"] = {}
    for k in ("5.10", "6.1"):
        if quick or args.no_vm:
            res["vm"][k] = {"skipped": "not measured: --quick" if quick else "not measured: --no-vm"}
        else:
            say(f"vm {k}: boot from the cache and the article")
            try:
                res["vm"][k] = course.vm_article(k)
            except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not crash
                res["vm"][k] = {"skipped": f"not measured: {type(e).__name__}: {e}"}
    res["vm_start"] = {}
    for k in ("5.10", "6.1"):
        if quick or args.no_vm or "skipped" in res["vm"][k]:
            res["vm_start"][k] = {"skipped": res["vm"][k].get("skipped", "not measured: --quick")}
        else:
            say(f"vm {k}: lab start, cold boot and restored, side by side")
            try:
                res["vm_start"][k] = vm_start.measure(k, rounds=3)
            except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not crash
                res["vm_start"][k] = {"skipped": f"not measured: {type(e).__name__}: {e}"}
    res["seconds"] = time.time() - res["started"]
    return res


def _accel() -> str:
    from nfteach.vm.accel import detect

    try:
        return detect().describe()
    except ValueError as e:
        return str(e)


def _fmt_rate(x: float) -> str:
    return f"{x / 1000:,.1f}k/s"


def table(res: Dict) -> str:
    rows: List[tuple] = []
    live = {r["case"]: r for r in res["live_syn"]} if isinstance(res["live_syn"], list) else {}
    for r in res["sim_syn"]:
        target = f">= {TARGETS['sim_syn_per_s'] // 1000}k/s" if r["case"].endswith("trace off") else "-"
        met = ("yes" if r["syn_per_s"] >= TARGETS["sim_syn_per_s"] else "no") if target != "-" else ""
        rows.append((f"sim SYN/s, {r['case']} (n={r['n']})", _fmt_rate(r["syn_per_s"]), target, met))
    if live:
        for case, r in live.items():
            rows.append((f"live SYN/s, {case} (n={r['n']}, seen {r['seen']})", _fmt_rate(r["syn_per_s"]), "-", ""))
        for r in res["sim_syn"]:
            if r["case"] in live:
                got = [p["ratio"] for p in res.get("sim_live_rounds", []) if p["case"] == r["case"]]
                if got:  # the median of the rounds' own ratios (each round: sim, then live)
                    ratio = statistics.median(got)
                    label = f"sim/live, {r['case']} (median of {len(got)} rounds: {', '.join(f'{x:.2f}' for x in got)})"
                else:
                    ratio, label = r["syn_per_s"] / live[r["case"]]["syn_per_s"], f"sim/live, {r['case']}"
                rows.append((label, f"{ratio:.3f}", ">= 1", "yes" if ratio >= TARGETS["sim_live_ratio"] else "no"))
    else:
        rows.append(("live SYN/s", res["live_syn"]["skipped"], "-", ""))
    c = res.get("sim_ceiling")
    if c:
        acc = live.get("accept, trace off")
        for v, what in (("model", "the model (sim_ceiling's own run)"),
                        ("inlined", "every call known before the packet inlined"),
                        ("flat", "flat: no hook entries, no tracing checks (not a model)")):
            vs = f", {c[v + '_syn_per_s'] / acc['syn_per_s']:.2f} x live" if acc else ""
            rows.append((f"sim accept ceiling, {what} (n={c['n']})", _fmt_rate(c[v + "_syn_per_s"]) + vs, "-", ""))
    m = res["memory"]
    rows.append((f"sim bytes per conntrack entry, RSS at n={m['rss']['n']:,}", f"{m['rss']['rss_per_entry']:.0f} B",
                 "<= 1024 B", "yes" if m["rss"]["rss_per_entry"] <= TARGETS["bytes_per_entry"] else "no"))
    t = m["tracemalloc"]
    rows.append((f"sim bytes per entry, tracemalloc at n={t['n']:,}", f"{t['traced_per_entry']:.0f} B", "-", ""))
    for name, d in res["import"].items():
        tgt = f"<= {TARGETS['import_s'] * 1000:.0f} ms" if name == "import nfteach" else "-"
        met = ("yes" if d["importtime_s"] <= TARGETS["import_s"] else "no") if tgt != "-" else ""
        rows.append((f"{name} (-X importtime)", f"{d['importtime_s'] * 1000:.1f} ms", tgt, met))
        rows.append((f"{name} (process wall - bare python)", f"{d['wall_minus_bare_python_s'] * 1000:.1f} ms", "-", ""))
    for prof, d in res["course_sim"].items():
        rows.append((f"all {d['scenarios']} scenarios on sim {prof} ({d['commands']} commands)",
                     f"{d['seconds']:.2f} s", "-", ""))
    d = res.get("tour", {})
    rows.append(("nfteach tour (the course on sim)", d["skipped"] if "skipped" in d else
                 f"{d['seconds']:.1f} s (exit {d['status']})", "-", ""))
    for k, d in res["vm"].items():
        if "skipped" in d:
            rows.append((f"vm {k}: boot from cache + article", d["skipped"], "-", ""))
        else:
            rows.append((f"vm {k}: lab start from cache ({d['release']})", f"{d['boot_s']:.1f} s", "-", ""))
            rows.append((f"vm {k}: article ({d['commands']} commands)", f"{d['article_s']:.1f} s", "-", ""))
    rows += vm_start.rows(res.get("vm_start", {}))
    lines = md_table(("benchmark", "measured", "target", "met"), rows)
    mc = res["machine"]
    lines.append(f"\n{res['mode']} run, {res['seconds']:.0f} s; machine: {mc['cpus']} cpus ({mc['cpu']}), "
                 f"{mc['memory']}, kernel {mc['kernel']}, /dev/kvm {'present' if mc['kvm'] else 'absent'} (vm accelerator: {_accel()}), "
                 f"python {mc['python']}, load average at start {mc['loadavg_at_start'][0]:.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small N, no vm boot (CI smoke)")
    ap.add_argument("--no-vm", action="store_true", help="do not boot the vm kernels")
    ap.add_argument("--no-live", action="store_true", help="do not inject SYNs into this machine's kernel")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    args = ap.parse_args(argv)
    res = run(args)
    res["table"] = table(res)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(res["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
