"""Pictures in a browser tab: the same DOT, drawn by Graphviz compiled to WebAssembly.

In Pyodide (JupyterLite, ``make lite``) there is no ``dot`` program to run. The site
bundles npm ``@viz-js/viz`` (Graphviz built with Emscripten) as the tiny wheel
``nfteach_viz`` the kernel loads at start; this module evaluates it in the kernel's
worker once and renders DOT to SVG with it. Nothing is fetched from the network.
"""
from __future__ import annotations

_viz = None       # the Viz instance, once its promise resolved
_pending = None   # the promise of it
#: True while a memory snapshot of this Python is made (deploy/lite/warm.py): a snapshot
#: cannot hold JavaScript objects, so prepare() does nothing until the restored kernel calls it
deferred = False


def _keep(viz) -> None:
    global _viz
    _viz = viz


def prepare() -> None:
    """Start Graphviz's WebAssembly without waiting (nfteach.browser calls this when nfteach
    is imported in a browser), so a widget's click — which runs outside any cell, where
    nothing can be awaited — finds it ready."""
    global _pending
    if _viz is not None or _pending is not None or deferred:
        return
    try:
        from importlib.resources import files

        import js
        from pyodide.code import run_js
    except ImportError as e:  # pragma: no cover - only in a browser
        raise RuntimeError(f"no WebAssembly Graphviz here ({e})") from None
    try:
        source = files("nfteach_viz").joinpath("viz-global.js").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        raise RuntimeError("this site has no Graphviz for the browser (nfteach_viz); "
                           "rebuild it with `make lite`") from None
    if not hasattr(js, "Viz"):
        run_js(source)  # UMD: defines globalThis.Viz in the kernel's worker
    _pending = js.Viz.instance()
    _pending.then(_keep)


def _instance():
    """The Viz instance; in a cell, waits for it (JSPI's run_sync) if it is still starting."""
    if _viz is None:
        prepare()
        from pyodide.ffi import run_sync

        try:
            _keep(run_sync(_pending))
        except Exception as e:  # noqa: BLE001 - outside a cell: nothing can wait here
            raise RuntimeError(f"Graphviz's WebAssembly is still starting ({e}); try again") from None
    return _viz


def to_svg(dot: str) -> str:
    """DOT source to SVG text, as ``dot -Tsvg`` gives it."""
    import js
    from pyodide.ffi import to_js

    options = to_js({"format": "svg"}, dict_converter=js.Object.fromEntries)
    return str(_instance().renderString(dot, options))
