"""A warm start for the site's kernel: Pyodide restored from a memory snapshot (``make lite``).

Starting jupyterlite-pyodide-kernel's Pyodide from scratch costs ~7 s of CPU at every page
load (bench/lite_kernel.mjs): the interpreter's start, 27 wheels unpacked, micropip and
IPython imported. At build time, deploy/lite/snapshot.mjs runs the site's own Pyodide in
Node.js, imports the modules the kernel's start imports and takes a memory snapshot
(Pyodide's private ``makeMemorySnapshot``; ``_loadSnapshot`` restores it), plus the files
the packages unpacked (a snapshot holds memory, not Pyodide's file system). The kernel's
worker is patched to load Pyodide through deploy/lite/warmstart.js, which restores both,
and falls back to a cold start if that fails. The snapshot is only valid for the Pyodide
build it came from (Pyodide checks its build id) and is rebuilt with the site.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: jupyter-lite.json's loadPyodideOptions key (its "URL" ending makes the kernel's plugin resolve it)
OPTION = "nfteachWarmURL"
MANIFEST = "./static/pyodide/warm.json"
WORKERS = "extensions/@jupyterlite/pyodide-kernel-extension/static"
#: the worker's call of loadPyodide (PyodideRemoteKernel.initRuntime, worker.ts), minified:
#: `this._pyodide=await n({indexURL:s,...` with any one-letter-or-so names
CALL = re.compile(r"this\._pyodide=await (\w+)\(\{indexURL:")


def make_snapshot(site: Path, packages, code: dict) -> None:
    """warm.json, warm.snapshot and warm.files in the site's static/pyodide/ (checked by restoring them).

    ``code`` (Python, each optional): ``probe`` runs after the kernel's start, in a Pyodide
    that is not snapshotted, and the modules it imports are imported in the snapshot too;
    ``setup`` runs before those imports, ``before`` just before the snapshot is taken,
    ``after`` in the browser once it is restored (deploy/lite/warmstart.js): for what would
    hold JavaScript objects, which a snapshot cannot."""
    subprocess.run(["node", str(HERE / "snapshot.mjs"), str(site / "static" / "pyodide"), ",".join(packages),
                    json.dumps(code)], check=True)


def patch_workers(site: Path) -> list:
    """Route the kernel workers' loadPyodide through warmstart.js; the files patched.

    Both workers the extension ships (comlink: the default, coincident: with
    SharedArrayBuffer) call loadPyodide once; a worker that does not look like that stops
    the build, since the site would silently start cold."""
    wrapper = (HERE / "warmstart.js").read_text()
    workers = sorted((site / WORKERS).glob("*.worker.*.js"))
    if {w.name.split(".")[0] for w in workers} != {"comlink", "coincident"}:
        raise SystemExit(f"jupyterlite-pyodide-kernel's workers changed: {[w.name for w in workers]} "
                         f"in {site / WORKERS}; update deploy/lite/warm.py")
    for w in workers:
        text = w.read_text()
        calls = CALL.findall(text)
        if len(calls) != 1 or "__nfteachWarmStart" in text:
            raise SystemExit(f"{w.name}: expected one call of loadPyodide matching {CALL.pattern}, "
                             f"found {len(calls)}; the kernel's worker changed: update deploy/lite/warm.py")
        text = CALL.sub(lambda m: f"this._pyodide=await __nfteachWarmStart({m[1]})({{indexURL:", text)
        w.write_text(f"var __nfteachWarmStart = {wrapper.strip()};\n{text}")
    return workers
