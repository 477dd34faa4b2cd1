"""Pictures in a browser tab: the same DOT, drawn by Graphviz compiled to WebAssembly.

In Pyodide (JupyterLite, ``make lite``) there is no ``dot`` program to run. The site
bundles npm ``@viz-js/viz`` (Graphviz built with Emscripten) as the tiny wheel
``nfteach_viz`` the kernel loads at start; this module evaluates it in the kernel's
worker once and renders DOT to SVG with it. Nothing is fetched from the network.
"""
from __future__ import annotations

_viz = None


def _instance():
    """The Viz instance (built once; ``Viz.instance()`` is a promise, awaited with JSPI)."""
    global _viz
    if _viz is None:
        try:
            from importlib.resources import files

            import js
            from pyodide.code import run_js
            from pyodide.ffi import run_sync
        except ImportError as e:  # pragma: no cover - only in a browser
            raise RuntimeError(f"no WebAssembly Graphviz here ({e})") from None
        try:
            source = files("nfteach_viz").joinpath("viz-global.js").read_text(encoding="utf-8")
        except ModuleNotFoundError:
            raise RuntimeError("this site has no Graphviz for the browser (nfteach_viz); "
                               "rebuild it with `make lite`") from None
        if not hasattr(js, "Viz"):
            run_js(source)  # UMD: defines globalThis.Viz in the kernel's worker
        _viz = run_sync(js.Viz.instance())
    return _viz


def to_svg(dot: str) -> str:
    """DOT source to SVG text, as ``dot -Tsvg`` gives it."""
    import js
    from pyodide.ffi import to_js

    options = to_js({"format": "svg"}, dict_converter=js.Object.fromEntries)
    return str(_instance().renderString(dot, options))
