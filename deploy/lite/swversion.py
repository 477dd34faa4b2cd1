"""The first reload of the site keeps its service worker, and the kernel its files (``make lite``).

JupyterLite's ServiceWorkerManager (``_initialize`` in @jupyterlite/server, bundled twice in
the site) stores the service worker's version in ``localStorage`` (key
``<script URL>-version``) only on a page the worker already controls; at such a page, a
missing or different version makes it unregister every worker and register anew. A first
visit is never controlled, so it stores nothing, and the first reload finds no version:
it unregisters the worker it is controlled by and registers a new one, which takes seconds.
Meanwhile the kernel is created, and since no worker is registered at that moment it
starts without JupyterLite's contents (``mountDrive`` false: "Pyodide contents will NOT be
synced"): Python cannot see the notebooks' folder in that session. Seen here on every first
reload in Chromium (``bench/lite.py --settle 0``: 0 of 2 kernels synced).

The patch stores the version right after a successful registration too, as a controlled
page would, so the next visit finds it. Every copy of the manager in the site is patched;
one that does not match stops the build.
"""
from __future__ import annotations

import re
from pathlib import Path

#: `<reg>=await <sw>.register(<url>),console.info("JupyterLite ServiceWorker was successfully registered")`
REGISTER = re.compile(r'(\w+=await \w+\.register\((\w+)\),console\.info\("JupyterLite ServiceWorker was successfully registered"\))')
#: the end of _unregisterOldServiceWorkers: `localStorage.setItem(<key>,<VERSION>)}async _pingServiceWorker`
VERSION = re.compile(r"localStorage\.setItem\(\w+,(\w+)\)\}async _pingServiceWorker")
KEY = re.compile(r"async _unregisterOldServiceWorkers\((\w+)\)\{let \w+=`\$\{\1\}-version`")
MARK = "/*nfteach:swversion*/"
#: where the site's JavaScript bundles are (JupyterLite's own, and the federated extensions')
SEARCHED = ("build", "extensions")


def patch_managers(site: Path) -> list:
    """Patch each bundled ServiceWorkerManager; the files patched (at least one)."""
    patched = []
    for path in sorted(p for d in SEARCHED for p in (site / d).rglob("*.js")):
        if b"_unregisterOldServiceWorkers" not in path.read_bytes():
            continue
        text = path.read_text(errors="surrogateescape")
        regs, versions = REGISTER.findall(text), VERSION.findall(text)
        if len(regs) != 1 or len(versions) != 1 or not KEY.search(text) or MARK in text:
            raise SystemExit(f"{path}: JupyterLite's ServiceWorkerManager does not look as expected "
                             f"(register: {len(regs)}, version: {len(versions)}); update deploy/lite/swversion.py")
        (call, url_var), version = regs[0], versions[0]
        text = text.replace(call, f"{call},{MARK}localStorage.setItem(`${{{url_var}}}-version`,{version})", 1)
        path.write_text(text, errors="surrogateescape")
        patched.append(path)
    if not patched:
        raise SystemExit(f"no ServiceWorkerManager found in {site}; update deploy/lite/swversion.py")
    return patched
