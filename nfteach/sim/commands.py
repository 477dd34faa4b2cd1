"""Which program runs for a command name on the simulator."""
from __future__ import annotations

from typing import Callable, Dict

from ..model.backend import Output
from .tools import conntrack as cmd_conntrack
from .tools import misc as cmd_misc
from .tools import modules as cmd_modules

LATER = {
    "ip": "ip (iproute2) is not modelled by the simulator; the lab's addresses are in docs/lab-contract.md; use --backend live or vm",
}

SUPPORTED = ("conntrack", "iptables", "iptables-legacy", "iptables-nft", "nft", "modprobe", "rmmod",
             "lsmod", "modinfo", "nc", "sysctl", "list-nf-hooks", "cat", "dmesg", "uname", "drgn")


def _iptables(kernel, ns, argv) -> Output:
    from .tools.iptables import iptables_main

    prog = argv[0]
    if prog.endswith("-legacy"):
        variant = "legacy"
    elif prog.endswith("-nft"):
        variant = "nft"
    else:
        variant = kernel.profile.tools.get("iptables_default", "nft")
    return iptables_main(ns, argv, variant)


def nft_run(ns, argv) -> Output:
    from .kernel.nftables import nft_main

    return nft_main(ns, argv)


def _nft(kernel, ns, argv) -> Output:
    return nft_run(ns, argv)


def _drgn(kernel, ns, argv) -> Output:
    from ..introspect.drgn_cli import sim_drgn

    return sim_drgn(kernel, ns, argv)


def _bpftrace(kernel, ns, argv) -> Output:
    from .trace.bpftrace import bpftrace_main

    return bpftrace_main(kernel, ns, argv, getattr(kernel, "files", {}))


def _trace_cmd(kernel, ns, argv) -> Output:
    from .trace.ftrace import trace_cmd

    return trace_cmd(kernel, ns, argv)


def _cat(kernel, ns, argv) -> Output:
    from .trace.ftrace import TRACE_FILES, cat_trace

    if len(argv) == 2 and argv[1] in TRACE_FILES:
        return cat_trace(kernel, argv[1])
    return cmd_misc.cat(kernel, ns, argv)


def _uname(kernel, ns, argv) -> Output:
    if argv[1:] == ["-r"]:
        return Output.of(stdout=kernel.profile.uname_r + "\n")
    return Output.of(stdout="Linux\n")


TABLE: Dict[str, Callable] = {
    "conntrack": cmd_conntrack.conntrack_main,
    "iptables": _iptables,
    "iptables-legacy": _iptables,
    "iptables-nft": _iptables,
    "nft": _nft,
    "lsmod": cmd_modules.lsmod,
    "modinfo": cmd_modules.modinfo,
    "modprobe": lambda k, ns, argv: cmd_modules.modprobe(k, ns, argv, nft_run),
    "rmmod": lambda k, ns, argv: cmd_modules.rmmod(k, ns, argv, nft_run),
    "nc": cmd_misc.nc,
    "sysctl": cmd_misc.sysctl,
    "cat": _cat,
    "bpftrace": _bpftrace,
    "trace-cmd": _trace_cmd,
    "dmesg": cmd_misc.dmesg,
    "list-nf-hooks": cmd_misc.list_nf_hooks,
    "uname": _uname,
    "drgn": _drgn,
}


def dispatch(kernel, ns, argv) -> Output:
    name = argv[0].rsplit("/", 1)[-1]
    if name in LATER:
        return Output.of(stderr=f"nfteach: {LATER[name]}\n", status=2)
    fn = TABLE.get(name)
    if fn is None:
        shown = name if len(name) <= 40 else name[:37] + "..."
        return Output.of(stderr=f"nfteach: {shown!r} is not a command the simulator models; "
                         f"supported: {', '.join(SUPPORTED)}\n", status=127)
    st = getattr(kernel, "_trace", None)  # tracing: the task a probe sees (comm, pid)
    prev = st.enter_task(name) if st is not None else None
    try:
        return fn(kernel, ns, [name, *argv[1:]])
    finally:
        if st is not None:
            st.leave_task(prev)
