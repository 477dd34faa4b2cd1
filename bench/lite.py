"""Time to first output of the course in a browser tab (the JupyterLite site, `make lite`).

Serves build/lite/ on 127.0.0.1, opens notebook 03 in headless Chromium (Debian's, driven
by Playwright), clicks Run All and times from opening the page to the first output:
cold (a fresh browser profile: nothing cached) and warm (the same profile, the page
opened again). Also the CPU time the browser's processes spent meanwhile (all of this
process's descendants, from /proc): on a shared machine the wall time mostly says how
busy the machine was, the CPU time what the site costs. Prints one markdown table.

Warm runs also say whether the kernel's file system was synced with JupyterLite's
contents (its service worker registered in time): reopened right after a cold run, a
JupyterLite page re-registers its service worker and may start the kernel before that is
done, unsynced, which is slightly faster. ``--settle S`` keeps the cold page open S seconds
after its first output before the warm one opens, as a learner coming back would.
Usage: python bench/lite.py [--runs N] [--site DIR] [--settle S]
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))
from labdriver import CHROMIUM, FLAGS  # noqa: E402

NOTEBOOK = "03-dropped-syn.ipynb"


def tree_cpu() -> float:
    """CPU seconds (user + system, reaped children included) of this process's descendants."""
    parent, cpu = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d.name)] = int(f[1])
            cpu[int(d.name)] = sum(int(x) for x in f[11:15])
    me, total = os.getpid(), 0
    for pid, ticks in cpu.items():
        p = pid
        while p > 1 and p != me:
            p = parent.get(p, 0)
        if p == me and pid != me:
            total += ticks
    return total / os.sysconf("SC_CLK_TCK")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def first_output(ctx, site: str, settle: float = 0):
    """(seconds to the notebook on screen, seconds to its first output, browser CPU seconds,
    whether the kernel was synced with the contents); the page stays open ``settle`` s more."""
    page = ctx.new_page()
    unsynced = []
    page.on("console", lambda m: unsynced.append(m.text) if "will NOT be synced" in m.text else None)
    t0, c0 = time.monotonic(), tree_cpu()
    page.goto(f"{site}/lab/index.html?path={NOTEBOOK}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    ui = time.monotonic() - t0
    accept = page.locator(".jp-Dialog button.jp-mod-accept")
    try:
        accept.wait_for(timeout=500)
        accept.click()
    except Exception:  # noqa: BLE001 - no kernel dialog
        pass
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.locator(".jp-OutputArea-output").first.wait_for(timeout=300_000)
    took, cpu = time.monotonic() - t0, tree_cpu() - c0
    page.wait_for_timeout(settle * 1000)
    page.close()
    return ui, took, cpu, not unsynced


def main(argv=None) -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", type=Path, default=REPO / "build" / "lite")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=0, help="seconds the cold page stays open after its first output")
    args = ap.parse_args(argv)
    if not (args.site / "jupyter-lite.json").exists():
        raise SystemExit(f"no site in {args.site}: make lite")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(args.site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_address[1]}"
    cold, warm = [], []
    with sync_playwright() as pw:
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as prof:
                ctx = pw.chromium.launch_persistent_context(prof, executable_path=CHROMIUM,
                                                            headless=True, args=FLAGS)
                try:
                    cold.append(first_output(ctx, site, args.settle))
                    warm.append(first_output(ctx, site))
                finally:
                    ctx.close()
    server.shutdown()
    size = sum(p.stat().st_size for p in args.site.rglob("*") if p.is_file())
    print(f"| {NOTEBOOK} | first output, median | runs | notebook on screen, median | browser CPU to first output, median | kernel synced with contents |\n"
          "|---|---|---|---|---|---|")
    for label, runs in (("cold (empty browser cache)", cold), (f"warm (cached, page reopened, settle {args.settle:g} s)", warm)):
        print(f"| {label} | {statistics.median(r[1] for r in runs):.1f} s | "
              f"{', '.join(f'{r[1]:.1f}' for r in runs)} | {statistics.median(r[0] for r in runs):.1f} s | "
              f"{statistics.median(r[2] for r in runs):.1f} s | {sum(r[3] for r in runs)} of {len(runs)} |")
    print(f"\nsite: {size / 2**20:.1f} MiB; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
