// Warm start of the site's Pyodide kernel from deploy/lite/snapshot.mjs's files (warm.json,
// warm.snapshot, warm.files in one folder; see deploy/lite/warm.py).
// One expression: (loadPyodide, read?) => async (config) => pyodide.
// deploy/lite/warm.py puts it into jupyterlite-pyodide-kernel's worker, around its call of
// loadPyodide; snapshot.mjs runs it in Node.js to check the snapshot at build time.
// With config.nfteachWarmURL (warm.json) Pyodide starts from the memory snapshot
// (loadPyodide's `_loadSnapshot`) and the files of the packages are written from one blob
// (`fsInit`) instead of unpacking 27 wheels; if that fails it says so on stderr (the
// kernel's log) and starts Pyodide from scratch, as without the option.
((loadPyodide, read = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer())) => {
  return async function nfteachLoadPyodide(config) {
    const { nfteachWarmURL: url, ...cold } = config;
    if (!url) return loadPyodide(cold);
    try {
      // all three at once, and while Pyodide fetches its own files: the snapshot is awaited
      // when the wasm is instantiated, the packages' files when its file system is set up
      const at = (f) => read(new URL(f, url).href);
      const manifest = read(url).then((b) => JSON.parse(new TextDecoder().decode(b)));
      const [snapshot, files] = [at("warm.snapshot"), at("warm.files")];
      for (const p of [manifest, snapshot, files]) p.catch(() => {});  // awaited below, errors caught there
      const py = await withMemoryFor(snapshot, () => loadPyodide({
        ...cold,
        packages: [],
        _loadSnapshot: snapshot,
        fsInit: async (FS, info) => {
          const [{ dirs, index }, blob] = await Promise.all([manifest, files]);
          for (const d of dirs) FS.mkdirTree(d);
          for (const [p, start, size] of index) FS.writeFile(p, blob.subarray(start, start + size));
          if (cold.fsInit) await cold.fsInit(FS, info);
        },
      }));
      const { loadedPackages, modules, after } = await manifest;
      Object.assign(py.loadedPackages, loadedPackages);
      // loadPyodide put "" in front of sys.path again (the snapshot has it already): each
      // import would look in the working directory twice, and the kernel's is its drive
      // (every lookup a request to the page); the random module's state is build time's,
      // every kernel would draw the same numbers
      py.runPython(`import sys
if sys.path[:2] == ["", ""]: del sys.path[0]
if "random" in sys.modules: sys.modules["random"].seed()`, { globals: py.toPy({}) });
      // what the snapshot could not hold, done before the kernel mounts its drive
      if (after) py.runPython(after, { globals: py.toPy({}) });
      globalThis.nfteachWarmStart = `restored ${modules} modules`;
      return py;
    } catch (e) {
      globalThis.nfteachWarmStart = `failed: ${e}`;
      (cold.stderr || console.error)(`nfteach: no warm start (${e}); starting Pyodide from scratch`);
      return loadPyodide(cold);
    }
  };

  // Pyodide's wasm exports its memory (30 MiB at start): restoring a larger snapshot needs
  // it grown right after instantiation, before loadPyodide copies the snapshot in
  // (snapshot.ts, restoreSnapshot: Module.HEAP8.set). Pyodide instantiates with these two.
  async function withMemoryFor(snapshot, load) {
    const W = WebAssembly, saved = { instantiate: W.instantiate, instantiateStreaming: W.instantiateStreaming };
    const grow = async (result) => {
      const memory = result?.instance?.exports?.memory, bytes = (await snapshot).length;
      if (memory instanceof W.Memory && memory.buffer.byteLength < bytes) {
        memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
      }
      return result;
    };
    for (const [name, f] of Object.entries(saved)) W[name] = async (...args) => grow(await f.apply(W, args));
    try {
      return await load();
    } finally {
      Object.assign(W, saved);
    }
  }
})
