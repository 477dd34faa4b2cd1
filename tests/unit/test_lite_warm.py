"""deploy/lite/warm.py: the kernel's worker is patched to start warm, exactly once, or the build stops."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lite_warm", REPO / "deploy" / "lite" / "warm.py")
warm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(warm)

#: the worker's initRuntime as jupyterlite-pyodide-kernel 0.8.6 ships it (minified)
CALL = ("async initRuntime(e){let{pyodideUrl:t,indexUrl:s}=e,{loadPyodide:n}=await zo(t);"
        "this._pyodide=await n({indexURL:s,stdout:e=>{},...e.loadPyodideOptions})}")


def _site(tmp_path, body=CALL):
    static = tmp_path / warm.WORKERS
    static.mkdir(parents=True)
    for name in ("comlink.worker.abc.js", "coincident.worker.def.js"):
        (static / name).write_text(f"var x=1;{body}")
    return tmp_path


def test_both_workers_load_pyodide_through_the_warm_start(tmp_path):
    site = _site(tmp_path)
    patched = warm.patch_workers(site)
    assert len(patched) == 2
    for w in patched:
        text = w.read_text()
        assert text.startswith("var __nfteachWarmStart = ")
        assert "this._pyodide=await __nfteachWarmStart(n)({indexURL:s," in text
        assert text.count("__nfteachWarmStart(") == 1


def test_a_changed_worker_stops_the_build(tmp_path):
    site = _site(tmp_path, body="this._pyodide=await loadIt({url:s})")
    with pytest.raises(SystemExit, match="update deploy/lite/warm.py"):
        warm.patch_workers(site)


def test_a_worker_is_not_patched_twice(tmp_path):
    site = _site(tmp_path)
    warm.patch_workers(site)
    with pytest.raises(SystemExit, match="found"):
        warm.patch_workers(site)


def test_the_installed_kernel_workers_take_the_patch(tmp_path):
    """The workers of the jupyterlite-pyodide-kernel installed here (what `make lite` copies)."""
    k = pytest.importorskip("jupyterlite_pyodide_kernel.constants")
    found = [d for root in (sys.prefix, sys.base_prefix)
             if (d := Path(root) / "share/jupyter/labextensions" / k.PYODIDE_KERNEL_NPM_NAME / "static").is_dir()]
    if not found:
        pytest.skip("jupyterlite-pyodide-kernel's labextension is not installed")
    dest = tmp_path / warm.WORKERS
    dest.mkdir(parents=True)
    for w in found[0].glob("*.worker.*.js"):
        shutil.copy(w, dest)
    for w in warm.patch_workers(tmp_path):
        if shutil.which("node"):  # still JavaScript: the worker is an ES module
            module = w.with_suffix(".mjs")
            module.write_text(w.read_text())
            subprocess.run(["node", "--check", str(module)], check=True)
