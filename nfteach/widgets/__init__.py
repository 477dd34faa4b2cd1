"""ipywidgets front ends and the ``%lab`` / ``%%lab`` magics.

Every function here *returns* a widget (an ``ipywidgets.VBox`` subclass that a notebook
shows by leaving it as a cell's last value); nothing calls ``display``.

>>> from nfteach.widgets import use_lab, current_lab
>>> from nfteach import Lab
>>> lab = use_lab(Lab("sim"))
>>> current_lab() is lab
True
"""
from __future__ import annotations

from typing import Optional

_CURRENT = None

__all__ = ["use_lab", "current_lab", "SendPacket", "RuleEditor", "Stepper", "DiffView", "KernelCompare",
           "syn_in_table_exercise", "step_through"]


def use_lab(lab):
    """Make ``lab`` the notebook's current lab (what ``%lab`` and the widgets use by default)."""
    global _CURRENT
    _CURRENT = lab
    return lab


def current_lab(lab: Optional[object] = None):
    """``lab`` if given, else the current lab (a ``sim`` lab is created on first use)."""
    global _CURRENT
    if lab is not None:
        return lab
    if _CURRENT is None:
        from ..lab import Lab

        _CURRENT = Lab("sim").start()
    return _CURRENT


def __getattr__(name):  # the widget classes need ipywidgets: import them on first use
    if name in __all__[2:]:
        from . import panels

        return getattr(panels, name)
    raise AttributeError(name)
