"""Wall time of the course: every scenario (``nfteach/scenarios/*.lab``) on each sim profile,
and on the ``vm`` backend: boot from the cache and the article, per kernel.

There is no ``nfteach tour`` yet, so "the whole course" is the scenario corpus.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "nfteach" / "scenarios"


#: what a notebook's first cell costs: the lazy package, then the Lab and a started sim lab
IMPORTS = {
    "import nfteach": "import nfteach",
    "from nfteach import Lab; Lab().start()": "from nfteach import Lab; Lab().start()",
}


def _importtime(code: str) -> float:
    """Sum of the top-level ``-X importtime`` cumulative times of nfteach's own modules."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                       capture_output=True, text=True, cwd=ROOT, check=True)
    total = 0
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$", line)
        if m and m.group(3) == " " and m.group(4).split(".")[0] == "nfteach":
            total += int(m.group(2))
    return total / 1e6


def import_time(repeat: int = 5) -> Dict:
    """Each of ``IMPORTS`` in a fresh interpreter: best of ``repeat`` (importtime and wall)."""
    out = {}
    bare = min(_wall([sys.executable, "-c", "pass"]) for _ in range(repeat))
    for name, code in IMPORTS.items():
        out[name] = {
            "importtime_s": min(_importtime(code) for _ in range(repeat)),
            "wall_minus_bare_python_s": min(_wall([sys.executable, "-c", code]) for _ in range(repeat)) - bare,
        }
    return out


def _wall(argv) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - t0


def scenarios_on_sim(profiles: Optional[List[str]] = None) -> Dict:
    from nfteach import Lab
    from nfteach.model.profile import available_profiles

    out = {}
    files = sorted(SCENARIOS.glob("*.lab"))
    for prof in profiles or available_profiles():
        t0 = time.perf_counter()
        commands = internal = 0
        for f in files:
            with Lab("sim", kernel=prof) as lab:
                tr = lab.script(f.read_text())
            commands += len(tr.results)
            internal += sum("internal error" in r.output for r in tr.results)
        out[prof] = {"seconds": time.perf_counter() - t0, "scenarios": len(files), "commands": commands,
                     "internal_errors": internal}
    return out


def tour(timeout: float = 600) -> Dict:
    """``nfteach tour`` (every notebook of the course, headless, on sim) when the CLI has it."""
    from nfteach.cli import build_parser

    choices = next((a.choices for a in build_parser()._actions if getattr(a, "choices", None)), {}) or {}
    if "tour" not in choices:
        return {"skipped": "not measured: no `nfteach tour` subcommand in the CLI yet"}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "nfteach", "tour"], capture_output=True, text=True, cwd=ROOT,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return {"seconds": time.perf_counter() - t0, "status": p.returncode,
            "lines": len(p.stdout.splitlines()), "internal_errors": (p.stdout + p.stderr).count("internal error")}


def vm_cache_state(kernel: str) -> Optional[str]:
    """None when the cached image of ``kernel`` is ready to boot; else why not."""
    from nfteach.vm.disk import image_dir, image_version
    from nfteach.vm.qemu import qemu_binary

    if not qemu_binary():
        return "no qemu-system-x86_64"
    stamp = image_dir(kernel) / "version"
    if not stamp.exists():
        return "no cache"
    if stamp.read_text().strip() != image_version():
        return "cache out of date (the image would be rebuilt first)"
    return None


def vm_article(kernel: str) -> Dict:
    from nfteach import Lab
    from nfteach.vm.backend import VmBackend

    why = vm_cache_state(kernel)
    if why:
        return {"skipped": f"not measured: {why}"}
    backend = VmBackend(kernel=kernel, build=False)
    t0 = time.perf_counter()
    lab = Lab(backend)
    try:
        lab.start()
        boot = time.perf_counter() - t0
        t1 = time.perf_counter()
        tr = lab.script((SCENARIOS / "article.lab").read_text())
        article = time.perf_counter() - t1
        failed = sum("internal error" in r.output for r in tr.results)
    finally:
        lab.close()
    return {"boot_s": boot, "article_s": article, "commands": len(tr.results), "internal_errors": failed,
            "release": backend.release}


if __name__ == "__main__":
    import json

    print(json.dumps(import_time()))
    print(json.dumps(scenarios_on_sim()))
    for k in sys.argv[1:]:
        print(json.dumps({k: vm_article(k)}))
    os._exit(0)
