// pytest under Pyodide in Node.js: CPython as the browser course runs it (WebAssembly, emscripten).
// Usage: node .ci/pyodide-pytest.mjs PYODIDE_DIR CHECKOUT WHEEL_DIR [pytest args]
// PYODIDE_DIR: a Pyodide distribution with a pyodide-lock.json naming packaging, pygments and
// graphviz (build/lite/static/pyodide, from `make lite`); WHEEL_DIR: pure-Python wheels
// (pytest, hypothesis and their dependencies) unpacked into site-packages before the run;
// CHECKOUT is mounted at /src (read through NODEFS) and put first on sys.path.
const [pyodideDir, src, wheelDir, ...args] = process.argv.slice(2);
const { loadPyodide } = await import(pyodideDir + "/pyodide.mjs");
const t0 = performance.now();
const py = await loadPyodide({
  indexURL: pyodideDir + "/",
  env: { PYTHONDONTWRITEBYTECODE: "1", HOME: "/home/pyodide" },
});
await py.loadPackage(["packaging", "pygments", "graphviz"], { messageCallback: () => {} });
for (const [dir, at] of [[src, "/src"], [wheelDir, "/wheels"]]) {
  py.FS.mkdirTree(at);
  py.FS.mount(py.FS.filesystems.NODEFS, { root: dir }, at);
}
py.runPython(`
import glob, importlib, os, site, sys, zipfile
for w in sorted(glob.glob("/wheels/*.whl")):
    zipfile.ZipFile(w).extractall(site.getsitepackages()[0])
importlib.invalidate_caches()
sys.path.insert(0, "/src")
os.chdir("/src")
`);
const version = py.runPython("import sys; sys.version.split()[0]");
console.log(`Pyodide ${py.version} (CPython ${version}, ${py.runPython("sys.platform")}), ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
py.globals.set("ARGS", py.toPy(args));
process.exitCode = py.runPython("import pytest; int(pytest.main(list(ARGS)))");
