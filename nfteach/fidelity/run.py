"""``nfteach fidelity``: random scripts on ``sim`` and on a real kernel, command by command.

    nfteach fidelity --kernel 5.10 --backend vm --scripts 30 --seed 1
    nfteach fidelity --kernel 6.18 --backend live --scripts 200 --seed 1 --json out.json

Each script runs on a fresh lab of each backend (a fresh simulator; a fresh pair of network
namespaces on ``live``; a fresh guest on ``vm``: only a new lab is a reset that leaves
nothing behind — module state, nft handle counters, the kernel log and the session's
conntrack entry all carry over otherwise). The report counts commands compared, divergent
and refused, by command kind; ``--json`` writes every problem with its shrunk script.
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from . import generate
from .compare import compare
from .shrink import shrink

COUNTED = ("divergent", "refused")


@dataclass
class Report:
    kernel: str
    backend: str
    seed: int
    scripts: int = 0
    seconds: float = 0.0
    by_kind: Dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    cases: List[dict] = field(default_factory=list)

    def total(self, verdict: Optional[str] = None) -> int:
        return sum(c[verdict] if verdict else sum(c.values()) for c in self.by_kind.values())

    @property
    def compared(self) -> int:
        return self.total() - self.total("unobservable")

    @property
    def problems(self) -> int:
        return sum(self.total(v) for v in COUNTED)

    def table(self) -> str:
        rows = [f"# nfteach fidelity: sim {self.kernel} vs {self.backend}, {self.scripts} scripts, seed {self.seed}, "
                f"{self.seconds:.0f} s",
                f"{'kind':28} {'compared':>8} {'divergent':>9} {'refused':>7} {'non-goal':>8} {'after':>5} {'unobs.':>6}"]
        for k in sorted(self.by_kind):
            c = self.by_kind[k]
            n = sum(c.values()) - c["unobservable"]
            rows.append(f"{k:28} {n:8} {c['divergent']:9} {c['refused']:7} {c['refused (non-goal)']:8} "
                        f"{c['after non-goal']:5} {c['unobservable']:6}")
        rows.append(f"{'total':28} {self.compared:8} {self.total('divergent'):9} {self.total('refused'):7} "
                    f"{self.total('refused (non-goal)'):8} {self.total('after non-goal'):5} "
                    f"{self.total('unobservable'):6}")
        bad = len({c['script_index'] for c in self.cases})
        rows.append(f"# {self.problems} of {self.compared} commands diverge or are refused; "
                    f"{bad} of {self.scripts} scripts")
        return "\n".join(rows) + "\n"

    def to_json(self) -> dict:
        return {"kernel": self.kernel, "backend": self.backend, "seed": self.seed, "scripts": self.scripts,
                "seconds": round(self.seconds, 1), "compared": self.compared,
                "divergent": self.total("divergent"), "refused": self.total("refused"),
                "non_goal": self.total("refused (non-goal)"), "after_non_goal": self.total("after non-goal"),
                "unobservable": self.total("unobservable"),
                "by_kind": {k: dict(c) for k, c in sorted(self.by_kind.items())}, "cases": self.cases}


def _run(backend: str, kernel: Optional[str], lines: List[str]):
    from ..lab import Lab

    with Lab(backend, kernel=kernel) as lab:
        return lab.script("\n".join(lines)).results


def pair_runner(kernel: str, backend: str) -> Callable:
    """``run_pair(lines) -> (sim results, real results)`` for sim ``kernel`` vs ``backend``."""
    real_kernel = None if backend == "live" else kernel

    def run_pair(lines: List[str]):
        return _run("sim", kernel, lines), _run(backend, real_kernel, lines)

    run_pair.releases = ()
    if backend == "live":  # normalize rule 9: this machine's build name vs the profile's
        import platform

        from ..model.profile import load_profile

        run_pair.releases = (platform.release(), load_profile(kernel).uname_r)
    return run_pair


def unavailable(kernel: str, backend: str) -> Optional[str]:
    """Why this pair cannot run here (None if it can)."""
    import os
    import platform
    import shutil

    if backend == "live":
        if os.geteuid() != 0:
            return "the live backend needs root"
        release = platform.release()
        if not (release == kernel or release.startswith(kernel + ".") or release.startswith(kernel + "-")):
            return f"this machine runs {release}, not a {kernel} kernel: no live kernel to compare sim {kernel} with"
        return None
    if backend == "vm":
        if not shutil.which("qemu-system-x86_64"):
            return "no qemu-system-x86_64"
        return None
    return f"no real backend {backend!r} (vm or live)"


def run(kernel: str, backend: str, scripts: int, seed: int, shrink_budget: int = 12,
        run_pair: Optional[Callable] = None, progress: Optional[Callable[[str], None]] = None) -> Report:
    run_pair = run_pair or pair_runner(kernel, backend)
    rep = Report(kernel, backend, seed)
    t0 = time.monotonic()
    for n, lines in enumerate(generate.scripts(seed, scripts, backend)):
        model, real = run_pair(lines)
        verdicts = compare(model, real, getattr(run_pair, "releases", ()))
        rep.scripts += 1
        for v in verdicts:
            rep.by_kind[v.kind][v.verdict] += 1
        problems = [v for v in verdicts if v.verdict in COUNTED]
        for j, v in enumerate(problems):
            case = {"script_index": n, "script": lines, "index": v.index, **v.to_dict()}
            if j == 0 and shrink_budget:
                case["minimal"] = shrink(run_pair, lines, v.index, shrink_budget)
            rep.cases.append(case)
        if progress:
            progress(f"script {n + 1}/{scripts}: {len(verdicts)} commands, {len(problems)} problems")
    rep.seconds = time.monotonic() - t0
    return rep


def add_subcommands(sub) -> None:
    p = sub.add_parser("fidelity", help="random scripts on sim and on a real kernel, compared command by command")
    p.add_argument("--kernel", "-k", required=True, help="5.10 or 6.1 (against vm), 6.18 (against live)")
    p.add_argument("--backend", "-b", default=None, help="vm (default) or live (default for 6.18)")
    p.add_argument("--scripts", "-n", type=int, default=30)
    p.add_argument("--seed", "-s", type=int, default=1)
    p.add_argument("--shrink-budget", type=int, default=12, help="runs spent shrinking each failing script")
    p.add_argument("--json", default=None, metavar="FILE", help="write the report and its cases here")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=main)


def main(args) -> int:
    backend = args.backend or ("live" if args.kernel.startswith("6.18") else "vm")
    why = unavailable(args.kernel, backend)
    if why:
        print(f"nfteach: fidelity: {why}", file=sys.stderr)
        return 2

    def progress(msg):
        if not args.quiet:
            print(f"# {msg}", file=sys.stderr, flush=True)

    rep = run(args.kernel, backend, args.scripts, args.seed, args.shrink_budget, progress=progress)
    sys.stdout.write(rep.table())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rep.to_json(), f, indent=1, ensure_ascii=False)
    return 1 if rep.problems else 0
