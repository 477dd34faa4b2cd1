"""``%lab CMD`` and ``%%lab``: lab commands in a notebook, on the current lab.

    %load_ext nfteach.widgets.magics
    %lab sudo conntrack -L
    %%lab
    sudo modprobe nf_conntrack enable_hooks=1
    sudo list-nf-hooks

The cell shows the transcript, and after commands that change hooks (nft, iptables,
modprobe, rmmod) the hook diagram of the vm. The lab is ``nfteach.widgets.use_lab(lab)``'s,
or a ``sim`` lab made on first use.
"""
from __future__ import annotations

import html
from typing import Optional

from . import current_lab

HOOK_CHANGERS = ("nft", "iptables", "iptables-legacy", "iptables-nft", "modprobe", "rmmod")


def changes_hooks(line: str) -> bool:
    words = line.strip().split()
    while words and words[0] in ("@host", "sudo"):
        words = words[1:]
    return bool(words) and words[0].rsplit("/", 1)[-1] in HOOK_CHANGERS


class LabOutput:
    """A transcript and, when hooks changed, the hook diagram: what a ``%lab`` cell shows."""

    def __init__(self, transcript, hooks=None):
        self.transcript = transcript
        self.hooks = hooks

    @property
    def text(self) -> str:
        return self.transcript.text()

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include=None, exclude=None):
        body = f'<pre style="font-size:12px">{html.escape(self.text)}</pre>'
        if self.hooks is not None:
            body += f'<div class="nfteach-hooks">{self.hooks.svg()}</div>'
        return {"text/plain": self.text, "text/html": body}


def run_lab(text: str, lab=None) -> LabOutput:
    """Run lab lines on the current lab; the hook chain comes along if it changed."""
    from .. import observe

    lab = current_lab(lab)
    watch = any(changes_hooks(ln) for ln in text.splitlines())
    before = _hooks(observe, lab) if watch else None
    t = lab.script(text)
    after = _hooks(observe, lab) if watch else None
    changed = after is not None and (before is None or before.lanes != after.lanes)
    return LabOutput(t, after if changed else None)


def _hooks(observe, lab):
    try:
        return observe.hooks(lab)
    except Exception:  # noqa: BLE001 - a backend without list-nf-hooks: no picture
        return None


def lab_magic(line: str, cell: Optional[str] = None) -> LabOutput:
    return run_lab(cell if cell is not None else line)


def load_ipython_extension(ipython) -> None:
    """``%load_ext nfteach.widgets.magics``."""
    ipython.register_magic_function(lab_magic, magic_kind="line_cell", magic_name="lab")


def unload_ipython_extension(ipython) -> None:  # pragma: no cover - nothing to undo
    pass
