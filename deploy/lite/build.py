"""Build the course as a JupyterLite site (``make lite``): build/lite/, served by any static host.

Everything the site loads is inside it, so it works offline (a USB stick, a course page):

- JupyterLite (PyPI ``jupyterlite-core``, ``jupyterlite-pyodide-kernel``) with the
  notebooks of ``notebooks/`` as its files;
- Pyodide itself (npm ``pyodide``, the version the kernel expects) in ``static/pyodide/``,
  with a ``pyodide-lock.json`` trimmed to what the course needs: the kernel's own wheels
  (IPython and friends, pure Python, from PyPI at the versions Pyodide's lock names),
  ipywidgets, graphviz (the Python package), nfteach (a wheel of this checkout) and
  ``nfteach_viz`` (npm ``@viz-js/viz``: Graphviz compiled to WebAssembly, see
  nfteach/render/wasm.py). The kernel loads all of them at start
  (``loadPyodideOptions.packages``), and never falls back to a package index. The wheels
  are compiled to bytecode by that Pyodide (in Node.js, deploy/lite/pycompile.py), as
  Pyodide's own packages are, so the browser does not compile them at every kernel start.
- a warm start (deploy/lite/warm.py): a memory snapshot of that Pyodide with the kernel's
  Python dependencies imported, which the kernel's worker (patched here) restores instead
  of starting Pyodide from scratch.
- JupyterLite's service worker manager, patched (deploy/lite/swversion.py) so that the first
  reload of the site keeps its service worker, and its kernel the notebooks' files.

Downloads (npm tarballs, wheels) are cached in ``$NFTEACH_CACHE/lite`` (default
``~/.cache/nfteach/lite``). Usage: ``python deploy/lite/build.py [--out build/lite]``.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import swversion  # noqa: E402 - deploy/lite/swversion.py, next to this file
import warm  # noqa: E402 - deploy/lite/warm.py, next to this file

REPO = Path(__file__).resolve().parents[2]
PYODIDE = "314.0.6"          # jupyterlite_pyodide_kernel.constants.PYODIDE_VERSION (checked below)
VIZ = "3.31.0"               # npm @viz-js/viz
PY = "3.14"                  # the Python of that Pyodide
#: Pyodide packages (their lock's names) the kernel needs; their dependencies follow
FROM_LOCK = ["micropip", "packaging", "ipython", "jedi", "typing-extensions"]
#: wheels Pyodide does not ship, from PyPI (pure Python)
EXTRA = ["comm==0.2.3", "ipywidgets==8.1.9", "jupyterlab-widgets==3.0.17", "graphviz==0.21"]
#: what the kernel loads at start (lock names)
PRELOAD = ["micropip", "piplite", "ipykernel", "comm", "pyodide-kernel", "jedi", "ipython",
           "widgetsnbextension", "jupyterlab-widgets", "ipywidgets", "graphviz", "nfteach-viz",
           "nfteach"]

#: the warm start's snapshot (deploy/lite/warm.py) also holds the modules this imports (what
#: a notebook's first cell does), without Graphviz's WebAssembly, which the restored kernel starts
WARM = {"probe": "from nfteach import course; course.open_lab()",
        "setup": "from nfteach.render import wasm; wasm.deferred = True",
        "before": "from nfteach.render import wasm; wasm.deferred = False",
        "after": "from nfteach.render import wasm; wasm.prepare()"}

#: wheels that keep their .py files next to the bytecode (tracebacks show their lines)
KEEP_SOURCE = ["nfteach"]
#: folders left out of a wheel: jedi's type stubs of packages the kernel does not have
#: (django, the typeshed third-party stubs) and of Python 2 (completion of what is installed
#: keeps working; the kernel writes each file into the browser's file system at every start)
PRUNE = {"jedi": ["jedi/third_party/django-stubs/", "jedi/third_party/typeshed/third_party/",
                  "jedi/third_party/typeshed/stdlib/2/"]}


def cache_dir() -> Path:
    d = Path(os.environ.get("NFTEACH_CACHE", Path.home() / ".cache" / "nfteach")) / "lite"
    d.mkdir(parents=True, exist_ok=True)
    return d


def run(*cmd, **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def npm_package(name: str, version: str, dest: Path) -> Path:
    """The npm tarball of name@version, unpacked into dest (cached)."""
    cache = cache_dir() / "npm"
    cache.mkdir(exist_ok=True)
    tgz = cache / (name.lstrip("@").replace("/", "-") + f"-{version}.tgz")
    if not tgz.exists():
        run("npm", "pack", "--silent", "--pack-destination", cache, f"{name}@{version}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(tgz) as t:
        for m in t.getmembers():
            if m.isfile() and m.name.startswith("package/"):
                m.name = m.name[len("package/"):]
                t.extract(m, dest)
    return dest


def pip_download(specs, dest: Path) -> None:
    """Pure-Python wheels for Pyodide's Python, no dependencies (the lock lists them)."""
    cache = cache_dir() / "wheels"
    cache.mkdir(exist_ok=True)
    missing = [s for s in specs if not _cached_wheel(cache, s)]
    if missing:
        run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
            "--python-version", PY, "--implementation", "py", "--abi", "none", "--platform", "any",
            "--dest", cache, *missing)
    for s in specs:
        shutil.copy(_cached_wheel(cache, s), dest)


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _cached_wheel(cache: Path, spec: str):
    name, version = spec.split("==")
    for w in cache.glob("*.whl"):
        n, v = w.name.split("-")[:2]
        if _norm(n) == _norm(name) and v == version:
            return w
    return None


def wheel_meta(whl: Path):
    """(name, version, top-level imports) of a wheel."""
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    field = {k: v for k, _, v in (line.partition(": ") for line in text.splitlines()[:20])}
    tops = sorted({n.split("/")[0].removesuffix(".py") for n in names
                   if "/" in n and not n.split("/")[0].endswith((".dist-info", ".data"))}
                  | {n.removesuffix(".py") for n in names if "/" not in n and n.endswith(".py")})
    return field["Name"], field["Version"], tops


def viz_wheel(dest: Path) -> Path:
    """``nfteach_viz``: npm @viz-js/viz's UMD build (Graphviz in WebAssembly) as a wheel."""
    src = npm_package("@viz-js/viz", VIZ, cache_dir() / "viz")
    js = (src / "dist" / "viz-global.js").read_bytes()
    lic = (src / "LICENSE").read_bytes() if (src / "LICENSE").exists() else b"MIT (see @viz-js/viz)\n"
    files = {
        "nfteach_viz/__init__.py": b'"""npm @viz-js/viz ' + VIZ.encode() + b' (Graphviz in WebAssembly), for nfteach in a browser."""\n',
        "nfteach_viz/viz-global.js": js,
        "nfteach_viz/LICENSE": lic,
        f"nfteach_viz-{VIZ}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: nfteach-viz\nVersion: {VIZ}\nSummary: @viz-js/viz for nfteach\n".encode(),
        f"nfteach_viz-{VIZ}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: nfteach\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}"
              for n, b in files.items()]
    files[f"nfteach_viz-{VIZ}.dist-info/RECORD"] = ("\n".join(record + [f"nfteach_viz-{VIZ}.dist-info/RECORD,,"]) + "\n").encode()
    whl = dest / f"nfteach_viz-{VIZ}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in files.items():
            z.writestr(zipfile.ZipInfo(n, (2020, 1, 1, 0, 0, 0)), b, zipfile.ZIP_DEFLATED)
    return whl


def closure(lock: dict, roots) -> list:
    seen, todo = [], list(roots)
    while todo:
        n = _norm(todo.pop())
        if n not in seen:
            seen.append(n)
            todo.extend(lock["packages"][n]["depends"])
    return seen


def kernel_wheels() -> Path:
    """The kernel's own wheels (piplite, pyodide_kernel, the ipykernel/widgetsnbextension shims)."""
    import jupyterlite_pyodide_kernel.constants as k

    if k.PYODIDE_VERSION != PYODIDE:
        raise SystemExit(f"jupyterlite-pyodide-kernel expects Pyodide {k.PYODIDE_VERSION}, "
                         f"this build pins {PYODIDE}: update PYODIDE in {__file__}")
    for root in (Path(sys.prefix), Path(sys.base_prefix)):
        d = root / "share/jupyter/labextensions" / k.PYODIDE_KERNEL_NPM_NAME / "static" / k.PYPI_WHEELS
        if d.is_dir():
            return d
    raise SystemExit("jupyterlite-pyodide-kernel's labextension is not installed in this Python")


def build(out: Path) -> None:
    work = REPO / "build" / "lite-src"
    if work.exists():
        shutil.rmtree(work)
    pyo = npm_package("pyodide", PYODIDE, work / "static" / "pyodide")
    for extra in ("console.html", "console-v2.html", "pyodide.js.map", "pyodide.mjs.map",
                  "ffi.d.ts", "pyodide.d.ts"):
        (pyo / extra).unlink(missing_ok=True)
    lock = json.loads((pyo / "pyodide-lock.json").read_text())
    need = closure(lock, FROM_LOCK)
    pip_download([f"{lock['packages'][n]['name']}=={lock['packages'][n]['version']}" for n in need] + EXTRA, pyo)
    # the kernel's shims (its ipykernel, widgetsnbextension 4.0.999) and the course
    stubs = kernel_wheels()
    for w in stubs.glob("*.whl"):
        if not w.name.startswith("widgetsnbextension-3"):
            shutil.copy(w, pyo)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", pyo, REPO)
    viz_wheel(pyo)
    # bytecode for Pyodide's Python, compiled by that Pyodide (in Node.js): see pycompile.py
    run("node", Path(__file__).with_name("pycompile.mjs"), pyo, ",".join(KEEP_SOURCE), json.dumps(PRUNE))
    packages = {}
    for whl in sorted(pyo.glob("*.whl")):
        name, version, imports = wheel_meta(whl)
        key = _norm(name)
        old = lock["packages"].get(key, {})
        packages[key] = {
            "name": old.get("name", key), "version": version, "file_name": whl.name,
            "install_dir": "site", "package_type": "package", "imports": old.get("imports", imports),
            "depends": old.get("depends", []) if key in need else [],
            "sha256": hashlib.sha256(whl.read_bytes()).hexdigest(), "unvendored_tests": False,
        }
    missing = [p for p in PRELOAD if p not in packages]
    if missing:
        raise SystemExit(f"no wheel for {missing}")
    (pyo / "pyodide-lock.json").write_text(json.dumps({"info": lock["info"], "packages": packages}, indent=1))
    settings = {"pyodideUrl": "./static/pyodide/pyodide.mjs", "disablePyPIFallback": True,
                "loadPyodideOptions": {"packages": PRELOAD, warm.OPTION: warm.MANIFEST}}
    (work / "jupyter-lite.json").write_text(json.dumps({
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {
            "appName": "nfteach: conntrack and Netfilter hooks",
            "litePluginSettings": {"@jupyterlite/pyodide-kernel-extension:kernel": settings},
        }}, indent=1))
    if out.exists():
        shutil.rmtree(out)
    nbs = sorted((REPO / "notebooks").glob("*.ipynb"))
    contents = [a for nb in nbs for a in ("--contents", nb)]
    run(sys.executable, "-m", "jupyterlite_core", "build", "--lite-dir", work, "--output-dir", out,
        "--no-sourcemaps", *contents, cwd=work)
    warm.make_snapshot(out, PRELOAD, WARM)
    for w in warm.patch_workers(out):
        print(f"  {w.relative_to(out)}: loads Pyodide through deploy/lite/warmstart.js")
    for m in swversion.patch_managers(out):
        print(f"  {m.relative_to(out)}: the first reload keeps its service worker (deploy/lite/swversion.py)")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"nfteach: JupyterLite site in {out}: {size / 2**20:.1f} MiB, "
          f"{sum(1 for p in out.rglob('*') if p.is_file())} files; serve it with any static "
          f"web server, e.g. python3 -m http.server -d {out}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "lite")
    build(ap.parse_args(argv).out.resolve())


if __name__ == "__main__":
    main()
