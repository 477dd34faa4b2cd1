"""The course in a browser tab (Pyodide, `make lite`): what it can run there, and what not.

Only the simulator runs in a browser: ``drgn`` is a C extension and the ``vm``/``live``
backends need QEMU or this machine's kernel. Those cells say so in one line and point
to where they do run.
"""
from __future__ import annotations

import sys

#: True inside Pyodide (JupyterLite): Python compiled to WebAssembly, no processes, no kernel
IN_BROWSER = sys.platform == "emscripten"

ELSEWHERE = ("open the course on Binder or install it on Linux: "
             "pip install 'nfteach[course]' && nfteach course")


def not_here(what: str) -> str:
    """One line: ``what`` cannot run in a browser tab, and where it can."""
    return f"{what} cannot run in a browser tab; {ELSEWHERE}"


if IN_BROWSER:  # start Graphviz's WebAssembly now: pictures drawn from a widget cannot wait for it
    try:
        from .render import wasm

        wasm.prepare()
    except Exception:  # noqa: BLE001 - no pictures is not a reason to fail the import
        pass
