// Where the browser kernel's start goes, phase by phase, without a browser: the site's
// Pyodide (build/lite, `make lite`) in Node.js does what jupyterlite-pyodide-kernel's worker
// does (loadPyodide with the site's preloaded packages, import piplite and pyodide_kernel),
// then runs notebook 03's first cell. Prints wall and CPU seconds (this process, all
// threads: V8's background compilers included) per phase: CPU is what a loaded machine
// cannot hide. With a warm start in the site (warm.json, deploy/lite/warm.py) Pyodide is
// restored from its memory snapshot as the site's worker does it (deploy/lite/warmstart.js);
// `cold` ignores it. Usage: node bench/lite_kernel.mjs [SITE_DIR] [warm|cold]
import fs from "node:fs";
import path from "node:path";

const site = path.resolve(process.argv[2] || new URL("../build/lite", import.meta.url).pathname);
const warm = process.argv[3] !== "cold" && fs.existsSync(path.join(site, "static", "pyodide", "warm.json"));
const conf = JSON.parse(fs.readFileSync(path.join(site, "jupyter-lite.json"), "utf8"));
const kernel = conf["jupyter-config-data"].litePluginSettings["@jupyterlite/pyodide-kernel-extension:kernel"];
const dir = path.join(site, "static", "pyodide") + "/";
const nb = JSON.parse(fs.readFileSync(path.join(site, "files", "03-dropped-syn.ipynb"), "utf8"));
const firstCell = nb.cells.find((c) => c.cell_type === "code").source;

const rows = [];
let t = performance.now(), c = process.cpuUsage();
const phase = (name) => {
  const dc = process.cpuUsage(c), now = performance.now();
  rows.push([name, (now - t) / 1000, (dc.user + dc.system) / 1e6]);
  t = now; c = process.cpuUsage();
};
const { loadPyodide } = await import(dir + "pyodide.mjs");
let py;
if (warm) {
  const warmstart = (0, eval)(fs.readFileSync(new URL("../deploy/lite/warmstart.js", import.meta.url), "utf8"));
  const read = async (url) => new Uint8Array(fs.readFileSync(new URL(url)));
  py = await warmstart(loadPyodide, read)({ indexURL: dir, nfteachWarmURL: new URL("warm.json", "file://" + dir).href });
  if (!String(globalThis.nfteachWarmStart).startsWith("restored")) throw new Error(globalThis.nfteachWarmStart);
  phase("restore the snapshot, write the packages' files, then what it could not hold (micropip, Graphviz)");
} else {
  py = await loadPyodide({ indexURL: dir });
  phase("loadPyodide (wasm, interpreter, stdlib)");
  await py.loadPackage(kernel.loadPyodideOptions.packages, { messageCallback: () => {} });
  phase(`load the ${kernel.loadPyodideOptions.packages.length} preloaded packages (unpack)`);
}
py.runPython("import micropip, piplite.piplite");
phase("import micropip, piplite");
py.runPython("import pyodide_kernel");
phase("import pyodide_kernel (IPython, jedi, prompt_toolkit...)");
py.runPython(Array.isArray(firstCell) ? firstCell.join("") : firstCell);
phase("notebook 03, first cell");
const total = rows.reduce((a, r) => [a[0] + r[1], a[1] + r[2]], [0, 0]);
console.log(`| phase (${site}, ${warm ? "warm" : "cold"}) | wall | CPU |\n|---|---|---|`);
for (const [n, w, cpu] of [...rows, ["total", ...total]]) console.log(`| ${n} | ${w.toFixed(2)} s | ${cpu.toFixed(2)} s |`);
