// Compile wheels to bytecode with the Pyodide that will run them (deploy/lite/pycompile.py).
// Usage: node deploy/lite/pycompile.mjs PYODIDE_DIR KEEP_SOURCE(comma-separated names) PRUNE(JSON)
// compiles every *.whl of PYODIDE_DIR in place.
import path from "node:path";
import fs from "node:fs";
const [pyodideDir, keep, prune] = process.argv.slice(2);
const { loadPyodide } = await import(path.resolve(pyodideDir, "pyodide.mjs"));
const py = await loadPyodide({ indexURL: path.resolve(pyodideDir) + "/" });
const dir = path.resolve(pyodideDir);
const wheels = fs.readdirSync(dir).filter((f) => f.endsWith(".whl")).sort();
py.FS.mkdirTree("/wheels");
py.FS.mount(py.FS.filesystems.NODEFS, { root: dir }, "/wheels");
py.globals.set("WHEELS", py.toPy(wheels.map((w) => "/wheels/" + w)));
py.globals.set("KEEP_SOURCE", py.toPy(keep.split(",").filter(Boolean)));
py.globals.set("PRUNE", py.toPy(JSON.parse(prune)));
py.runPython(fs.readFileSync(new URL("./pycompile.py", import.meta.url), "utf8"), { filename: "pycompile.py" });
