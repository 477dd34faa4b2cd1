"""deploy/lite/swversion.py: every bundled ServiceWorkerManager also stores its worker's
version after a first registration (so the first reload does not unregister it), exactly
once, or the build stops."""
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lite_swversion", REPO / "deploy" / "lite" / "swversion.py")
swversion = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(swversion)

#: _initialize and _unregisterOldServiceWorkers as @jupyterlite/server bundles them (minified)
MANAGER = (
    'const S="0.7.1";class M{async _initialize(e){let{serviceWorker:t}=navigator,a=null;'
    'if(t.controller){let e=t.controller.scriptURL;await this._unregisterOldServiceWorkers(e),'
    'a=await t.getRegistration(e)||null}if(!a&&t)try{console.info("Registering new JupyterLite ServiceWorker",e),'
    'a=await t.register(e),console.info("JupyterLite ServiceWorker was successfully registered")}'
    'catch(e){console.warn(e)}this._setRegistration(a)}'
    'async _unregisterOldServiceWorkers(e){let t=`${e}-version`,a=localStorage.getItem(t);'
    'if(a&&a!==S||!a){let e=await navigator.serviceWorker.getRegistrations();'
    'await Promise.all(e.map(e=>e.unregister()))}localStorage.setItem(t,S)}async _pingServiceWorker(){}}'
)


def _site(tmp_path, *bodies):
    for i, body in enumerate(bodies):
        p = tmp_path / "build" / f"{i}.js"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body)
    (tmp_path / "other.js").write_text("var unrelated=1;")
    return tmp_path


def test_each_manager_stores_the_version_after_registering(tmp_path):
    site = _site(tmp_path, MANAGER, MANAGER.replace('S="', 'b="').replace("a!==S", "a!==b").replace("(t,S)", "(t,b)"))
    patched = swversion.patch_managers(site)
    assert len(patched) == 2
    for p, version in zip(patched, ("S", "b")):
        text = p.read_text()
        after = 'console.info("JupyterLite ServiceWorker was successfully registered"),'
        assert f"{after}{swversion.MARK}localStorage.setItem(`${{e}}-version`,{version})}}catch" in text
        assert text.count(swversion.MARK) == 1
    assert (tmp_path / "other.js").read_text() == "var unrelated=1;"


def _first_visit_then_reload(tmp_path, manager_js: str) -> dict:
    """Run a manager's _initialize in Node.js as a first (uncontrolled) visit, then as the
    reload (controlled by the worker the first visit registered)."""
    harness = manager_js + """
const store = {}; globalThis.localStorage = {getItem: k => store[k] ?? null, setItem: (k, v) => { store[k] = v; }};
const url = "http://127.0.0.1/service-worker.js?enableCache=false";
let unregistered = 0, controller = null;
const reg = {unregister: async () => { unregistered++; }};
Object.defineProperty(globalThis, "navigator", {value: {serviceWorker: {
  get controller() { return controller; }, register: async () => reg, getRegistration: async () => reg,
  getRegistrations: async () => [reg]}}});
console.info = () => {};
(async () => {
  const m = new M(); m._setRegistration = () => {};
  await m._initialize(url);
  controller = {scriptURL: url};
  await m._initialize(url);
  console.log(JSON.stringify({unregistered, version: store[url + "-version"]}));
})();
"""
    (tmp_path / "run.js").write_text(harness)
    out = subprocess.run(["node", str(tmp_path / "run.js")], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.mark.skipif(not shutil.which("node"), reason="no node to run the manager")
def test_the_reload_keeps_its_worker_only_when_patched(tmp_path):
    assert _first_visit_then_reload(tmp_path, MANAGER) == {"unregistered": 1, "version": "0.7.1"}  # upstream
    [p] = swversion.patch_managers(_site(tmp_path, MANAGER))
    assert _first_visit_then_reload(tmp_path, p.read_text()) == {"unregistered": 0, "version": "0.7.1"}


def test_a_changed_manager_stops_the_build(tmp_path):
    site = _site(tmp_path, MANAGER.replace("was successfully registered", "registered"))
    with pytest.raises(SystemExit, match="update deploy/lite/swversion.py"):
        swversion.patch_managers(site)


def test_a_manager_is_not_patched_twice(tmp_path):
    site = _site(tmp_path, MANAGER)
    swversion.patch_managers(site)
    with pytest.raises(SystemExit, match="update deploy/lite/swversion.py"):
        swversion.patch_managers(site)


def test_the_built_site_is_patched():
    """The site `make lite` built here, if there is one: its managers carry the patch."""
    site = REPO / "build" / "lite"
    if not (site / "jupyter-lite.json").exists():
        pytest.skip("no build/lite here (make lite)")
    files = [p for d in swversion.SEARCHED for p in (site / d).rglob("*.js")
             if b"_unregisterOldServiceWorkers" in p.read_bytes()]
    stale = [str(p) for p in files if swversion.MARK not in p.read_text(errors="ignore")]
    assert files and not stale, f"built before deploy/lite/swversion.py existed (make lite): {stale}"
