// A warm start for the site's Pyodide kernel (deploy/lite/warm.py): a memory snapshot of
// Pyodide with the kernel's Python dependencies already imported, and the files they came from.
// Usage: node deploy/lite/snapshot.mjs PYODIDE_DIR PACKAGES(comma-separated lock names) CODE
// (JSON: Python code to run, each optional: {"probe", "setup", "before", "after"}, see warm.py)
// writes PYODIDE_DIR/warm.json, warm.snapshot and warm.files, then restores them the way
// the browser's kernel worker will (deploy/lite/warmstart.js) and starts the kernel's Python.
//
// 1. Which modules: a plain Pyodide does what jupyterlite-pyodide-kernel's worker does at
//    start (import micropip, piplite.piplite, pyodide_kernel); the modules that added are
//    the list (and what CODE.probe imports after), minus the kernel's and micropip/piplite's
//    own (they hold references to the JavaScript `pyodide` object, which a snapshot cannot
//    carry) and the kernel's mocks.
// 2. A Pyodide made with `_makeSnapshot` loads the packages, applies the kernel's mocks (as
//    pyodide_kernel does before IPython is imported), runs CODE.setup, imports that list,
//    runs CODE.before and is snapshotted.
//    Pyodide's file system is not part of a memory snapshot: every file added since
//    loadPyodide (the unpacked wheels) goes to warm.files, listed in warm.json.
import fs from "node:fs";
import path from "node:path";

const [pyodideDir, packageList, codeJSON] = process.argv.slice(2);
const code = JSON.parse(codeJSON || "{}");
const dir = path.resolve(pyodideDir) + "/";
const packages = packageList.split(",");
const { loadPyodide } = await import(dir + "pyodide.mjs");
const ownGlobals = new Set(Object.keys(globalThis));  // the check (3.) runs without what Python adds
const quiet = { stdout: () => {}, stderr: (s) => console.error(s) };
const KERNEL = "import micropip, piplite.piplite\nimport pyodide_kernel";
//: the kernel's first imports, which the snapshot cannot hold (see 1.): warmstart.js does
//: them once restored, while the working directory is not yet the kernel's drive
const RESTORED = "import micropip, piplite.piplite";
//: top-level names left out of the snapshot (see 1. above); the kernel imports them itself
const LATER = ["pyodide_kernel", "micropip", "piplite", "js", "pyodide_js",
               "termios", "fcntl", "resource", "tornado", "pexpect"];

// 1. the modules the kernel's start imports
const probe = await loadPyodide({ indexURL: dir, packages, ...quiet });
const modules = () => probe.runPython("import sys; list(sys.modules)").toJs();
const before = new Set(modules());
probe.runPython(KERNEL);
if (code.probe) probe.runPython(code.probe);
const wanted = modules().filter((m) => !before.has(m) && !LATER.includes(m.split(".")[0]));

// 2. the snapshot
const py = await loadPyodide({ indexURL: dir, _makeSnapshot: true, ...quiet });
const tree = (root = "/", out = new Map()) => {
  for (const name of py.FS.readdir(root)) {
    if (name === "." || name === "..") continue;
    const p = path.posix.join(root, name);
    if (["/dev", "/proc", "/tmp"].includes(p)) continue;
    const st = py.FS.lstat(p);
    out.set(p, { mode: st.mode, size: st.size, mtime: +st.mtime });
    if (py.FS.isDir(st.mode)) tree(p, out);
  }
  return out;
};
const bare = tree();
await py.loadPackage(packages, { messageCallback: () => {} });
py.globals.set("WANTED", py.toPy(wanted));
py.globals.set("SETUP", code.setup || "");
const failed = py.runPython(`
import importlib, importlib.machinery, sys
from pathlib import Path

def _apply_kernel_mocks():
    """pyodide_kernel.mocks.apply_mocks(), without importing pyodide_kernel (its __init__ starts the kernel)"""
    spec = importlib.util.find_spec("pyodide_kernel")
    mocks = Path(spec.submodule_search_locations[0]) / "mocks.pyc"
    module = importlib.machinery.SourcelessFileLoader("_kernel_mocks", str(mocks)).load_module()
    module.apply_mocks()

_apply_kernel_mocks()
exec(SETUP, {})
failed = []
for name in WANTED:
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception as e:
            failed.append(f"{name}: {type(e).__name__}: {e}")
sys.modules.pop("_kernel_mocks", None)
del WANTED, SETUP, _apply_kernel_mocks, name, importlib, sys, Path
failed`).toJs();
if (failed.length) throw new Error(`not importable before the kernel: ${failed.join("; ")}`);
if (code.before) py.runPython(code.before, { globals: py.toPy({}) });
py.runPython("import gc; gc.collect()", { globals: py.toPy({}) });  // JsProxies dropped above

const files = [], dirs = [];
let offset = 0;
for (const [p, st] of tree()) {
  const old = bare.get(p);
  if (old && old.mtime === st.mtime && old.size === st.size) continue;
  if (py.FS.isDir(st.mode)) dirs.push(p);
  else if (py.FS.isFile(st.mode)) { files.push([p, offset, st.size]); offset += st.size; }
  else throw new Error(`${p}: neither a file nor a folder; warmstart.js cannot recreate it`);
}
const blob = Buffer.alloc(offset);
for (const [p, at] of files) blob.set(py.FS.readFile(p), at);

// loadedPackages is the one JavaScript object Pyodide's own modules hold that a snapshot
// checks by value (snapshot.ts: getExpectedKeys() wants it to be {}): empty it meanwhile
const loaded = { ...py.loadedPackages };
for (const k of Object.keys(loaded)) delete py.loadedPackages[k];
const snapshot = py.makeMemorySnapshot();
Object.assign(py.loadedPackages, loaded);

fs.writeFileSync(dir + "warm.snapshot", snapshot);
fs.writeFileSync(dir + "warm.files", blob);
fs.writeFileSync(dir + "warm.json", JSON.stringify({
  dirs, index: files, loadedPackages: loaded, after: [code.after, RESTORED].filter(Boolean).join("\n"),
  modules: wanted.length,
}));
console.log(`  warm start: ${wanted.length} modules imported, snapshot ${(snapshot.length / 2 ** 20).toFixed(1)} MiB, `
            + `${files.length} files ${(offset / 2 ** 20).toFixed(1)} MiB`);

// 3. check: restored as the worker will restore it, the kernel's Python starts (in a worker's
//    globals: without those the Pyodides above added, e.g. what CODE.probe defined)
for (const k of Object.keys(globalThis)) if (!ownGlobals.has(k)) delete globalThis[k];
const warmstart = (0, eval)(fs.readFileSync(new URL("./warmstart.js", import.meta.url), "utf8"));
const read = async (url) => new Uint8Array(fs.readFileSync(new URL(url)));
const t0 = performance.now();
const warm = await warmstart(loadPyodide, read)({ indexURL: dir, packages, ...quiet,
                                                 nfteachWarmURL: new URL("warm.json", "file://" + dir).href });
warm.runPython(KERNEL + "\nassert pyodide_kernel.kernel_instance is not None");
const missing = packages.filter((p) => !(p in warm.loadedPackages));
if (missing.length) throw new Error(`warm start: ${missing} not marked loaded`);
console.log(`  warm start checked: kernel's Python up in ${((performance.now() - t0) / 1000).toFixed(1)} s (Node)`);
