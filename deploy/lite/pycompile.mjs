// Compile wheels to bytecode with the Pyodide that will run them (deploy/lite/pycompile.py).
// Usage: node deploy/lite/pycompile.mjs PYODIDE_DIR KEEP_SOURCE(comma-separated names) PRUNE(JSON) WHEEL...
import path from "node:path";
import fs from "node:fs";
const [pyodideDir, keep, prune, ...wheels] = process.argv.slice(2);
const { loadPyodide } = await import(path.resolve(pyodideDir, "pyodide.mjs"));
const py = await loadPyodide({ indexURL: path.resolve(pyodideDir) + "/" });
const dir = path.dirname(path.resolve(wheels[0]));
py.FS.mkdirTree("/wheels");
py.FS.mount(py.FS.filesystems.NODEFS, { root: dir }, "/wheels");
py.globals.set("WHEELS", py.toPy(wheels.map((w) => "/wheels/" + path.basename(w))));
py.globals.set("KEEP_SOURCE", py.toPy(keep.split(",").filter(Boolean)));
py.globals.set("PRUNE", py.toPy(JSON.parse(prune)));
py.runPython(fs.readFileSync(new URL("./pycompile.py", import.meta.url), "utf8"), { filename: "pycompile.py" });
