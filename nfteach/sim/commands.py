"""Which program runs for a command name on the simulator: the one table of commands.

Every entry is ``"module:function"`` in :mod:`nfteach.sim.tools`, called as
``function(kernel, ns, argv) -> Output``; a tool's module is imported when it first runs.
To add a lab command: write its module in ``nfteach/sim/tools/``, add one row here, and
add its name to :data:`nfteach.model.notes.LAB_COMMANDS` (the vocabulary every backend
shares).
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict

from ..model.backend import Output

LATER = {
    "ip": "ip (iproute2) is not modelled by the simulator; the lab's addresses are in docs/lab-contract.md; use --backend live or vm",
}

TABLE: Dict[str, str] = {
    "conntrack": "conntrack:main",
    "iptables": "iptables:main",
    "iptables-legacy": "iptables:main",
    "iptables-nft": "iptables:main",
    "nft": "nft:main",
    "lsmod": "modules:lsmod",
    "modinfo": "modules:modinfo",
    "modprobe": "modules:modprobe",
    "rmmod": "modules:rmmod",
    "nc": "misc:nc",
    "sysctl": "misc:sysctl",
    "cat": "misc:cat",
    "bpftrace": "bpftrace:main",
    "trace-cmd": "trace_cmd:main",
    "dmesg": "misc:dmesg",
    "list-nf-hooks": "misc:list_nf_hooks",
    "uname": "misc:uname",
    "drgn": "drgn:main",
}

_loaded: Dict[str, Callable] = {}


def program(name: str) -> Callable:
    """The function that runs ``name`` (a key of :data:`TABLE`)."""
    fn = _loaded.get(name)
    if fn is None:
        mod, _, attr = TABLE[name].partition(":")
        fn = _loaded[name] = getattr(importlib.import_module(f"{__package__}.tools.{mod}"), attr)
    return fn


def supported_text() -> str:
    return ", ".join(TABLE)


def dispatch(kernel, ns, argv) -> Output:
    name = argv[0].rsplit("/", 1)[-1]
    if name in LATER:
        return Output.of(stderr=f"nfteach: {LATER[name]}\n", status=2)
    if name not in TABLE:
        shown = name if len(name) <= 40 else name[:37] + "..."
        return Output.of(stderr=f"nfteach: {shown!r} is not a command the simulator models; "
                         f"supported: {supported_text()}\n", status=127)
    fn = program(name)
    st = getattr(kernel, "_trace", None)  # tracing: the task a probe sees (comm, pid)
    prev = st.enter_task(name) if st is not None else None
    try:
        return fn(kernel, ns, [name, *argv[1:]])
    finally:
        if st is not None:
            st.leave_task(prev)
