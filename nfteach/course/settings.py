"""Which lab a notebook runs on, and the notices a cell shows when it cannot run here."""
from __future__ import annotations

import atexit
import html
import os
from typing import Optional, Tuple

from ..backends import DEFAULT_BACKEND, get_backend_class
from ..lab import Lab
from ..model.profile import DEFAULT_KERNEL
from .shown import Shown, show

ENV_BACKEND = "NFTEACH_BACKEND"
ENV_KERNEL = "NFTEACH_KERNEL"
ARTICLE = "https://blog.cloudflare.com/conntrack-turns-a-blind-eye-to-dropped-syns/"


def settings(backend: Optional[str] = None, kernel: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """(backend, kernel) from the arguments, else the environment, else sim 5.10."""
    backend = backend or os.environ.get(ENV_BACKEND) or DEFAULT_BACKEND
    kernel = kernel or os.environ.get(ENV_KERNEL) or None
    if kernel is None and backend != "live":
        kernel = DEFAULT_KERNEL
    return backend, kernel


def open_lab(backend: Optional[str] = None, kernel: Optional[str] = None) -> Lab:
    """A started lab for a notebook. Notebooks never close it: it is closed when the
    notebook's kernel shuts down (or restarts), so a "Try it" cell after Run All still
    runs on the lab the pictures above show."""
    lab = Lab(*settings(backend, kernel)).start()
    atexit.register(_close_quietly, lab)
    return lab


def fresh_lab(lab: Lab) -> Lab:
    """A second lab like ``lab`` (same backend and kernel), started, for an experiment that
    needs a clean slate: ``with course.fresh_lab(lab) as other: ...`` closes it after."""
    return Lab(lab.name, kernel=None if lab.name == "live" else lab.kernel).start()


def _close_quietly(lab: Lab) -> None:
    try:
        if not lab.closed:
            lab.close()
    except Exception:  # noqa: BLE001 - the kernel is going away; nothing to report to
        pass


def reset(lab: Lab, all_mine: bool = False) -> Lab:
    """A stuck lab: ``lab = course.reset(lab)`` closes it, ends this user's left-over labs
    (what ``nfteach reset`` does; ``all_mine=True`` also ends the labs of other notebooks
    of this user that are still open), and returns a fresh lab of the same backend and kernel."""
    from ..reset import reset as reset_mine

    backend, kernel = lab.name, (None if lab.name == "live" else lab.kernel)
    _close_quietly(lab)
    reset_mine(all_mine=all_mine)
    return open_lab(backend, kernel)


def kernels(lab_or_backend) -> Tuple[Optional[str], ...]:
    """The kernels this backend can put side by side (live: only the machine's own, ``None``)."""
    name = lab_or_backend if isinstance(lab_or_backend, str) else lab_or_backend.name
    return tuple(get_backend_class(name).kernels())


class Banner(Shown):
    def __init__(self, lab: Lab):
        self.backend, self.kernel = lab.name, lab.kernel
        self.text = f"nfteach lab — {lab.describe()}"

    def _repr_html_(self) -> str:
        lab_text = self.text.split(" — ", 1)[-1]
        return (f'<div style="border-left:4px solid #2a7ae2;padding:4px 8px">'
                f"<b>nfteach lab</b>: backend <code>{html.escape(self.backend)}</code>, "
                f"kernel <code>{html.escape(str(self.kernel))}</code><br>"
                f"<small>{html.escape(lab_text)}</small></div>")


def banner(lab: Lab) -> Banner:
    """Which backend and kernel produced the outputs below (display it)."""
    return Banner(lab)


class Notice(Shown):
    """A cell that cannot run here says why, and what would run it."""

    def __init__(self, text: str):
        self.text = text

    def _repr_html_(self) -> str:
        return (f'<div style="border-left:4px solid #e2a52a;padding:4px 8px">'
                f"{html.escape(self.text)}</div>")


def needs(lab: Lab, *backends: str, why: str = "") -> bool:
    """True if the lab runs on one of ``backends``; otherwise show why the cell skips.

    Cells tagged ``vm-only``/``live-only`` start with ``if course.needs(lab, "vm", why=...):``.
    """
    if lab.name in backends:
        return True
    want = " or ".join(backends)
    show(Notice(f"This cell needs the {want} backend ({why or 'a real kernel'}); this lab runs on "
                f"{lab.name}, so it skips. Run the course with {ENV_BACKEND}={backends[0]} "
                f"(e.g. `nfteach tour --backend {backends[0]}`) to see it."))
    return False


def program(lab: Lab):
    """A drgn ``Program`` reading the lab's kernel, or None (with a notice) where there is none yet."""
    try:
        from .. import introspect
    except ImportError as e:
        show(Notice(f"drgn introspection (nfteach.introspect) is not installed in this nfteach yet ({e}); "
                    "the lab command `drgn` below says what this backend can do."))
        return None
    try:
        return introspect.program(lab)
    except Exception as e:  # noqa: BLE001 - explain, do not fail the notebook
        show(Notice(f"No drgn program on the {lab.name} backend: {e}"))
        return None
