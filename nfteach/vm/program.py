"""A drgn :class:`drgn.Program` on the QEMU guest, read over QMP from this machine.

The guest kernel's ``vmlinux`` and the debug ``.ko`` files of its loaded netfilter modules
give drgn its types and symbols; the walkers themselves (``list-nf-hooks``, the conntrack
tables) are the backend-independent ones of :mod:`nfteach.introspect`.

>>> from nfteach.introspect.hooks import format_hooks, netns_nf_hooks     # doctest: +SKIP
>>> print(format_hooks(netns_nf_hooks(qemu_program(qmp, vmlinux, kos))), end="")  # doctest: +SKIP
🪝 ipv4 PRE_ROUTING
       -400 → ipv4_conntrack_defrag
...
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable


def qemu_program(qmp: Path, vmlinux: Path, modules: Iterable[Path] = ()):
    """A drgn Program on a QEMU guest over QMP, with the given debug files loaded."""
    import logging

    import drgn

    logging.getLogger("drgn").setLevel(logging.WARNING)  # not one line per debug file
    prog = drgn.Program()
    prog.set_qemu_qmp(str(qmp))
    paths = [str(vmlinux), *map(str, modules)]
    try:
        prog.load_debug_info(paths)
    except drgn.MissingDebugInfoError:
        pass  # modules without a debug file: their symbols show as addresses
    return prog
