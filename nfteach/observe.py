"""Structured results from a lab, for pictures and widgets: hook chains, packet paths and
conntrack entry lifecycles.

>>> from nfteach import Lab
>>> from nfteach import observe
>>> with Lab("sim", kernel="5.10") as lab:
...     _ = lab.script("sudo modprobe nf_conntrack enable_hooks=1")
...     [c.function for c in observe.hooks(lab).callbacks("LOCAL_IN")]
['ipv4_confirm']

``hooks`` works on every backend (on ``live``/``vm`` it parses ``list-nf-hooks``);
``path`` and ``lifecycle`` watch the modelled kernel run, so they need the ``sim`` backend.
Every result has ``.dot`` (the Graphviz source), ``.svg()`` and ``_repr_svg_``.
"""
from __future__ import annotations

from typing import Optional, Tuple

from .model.errors import LabError
from .observations import (  # noqa: F401 (the results are part of this module's API)
    HOOKS,
    MACHINE_OF_NS,
    Callback,
    Comparison,
    CtEvent,
    CtHistory,
    CtLifecycle,
    CtState,
    HookChain,
    Packet,
    PacketPath,
    PathEvent,
    SentPacket,
    owner_kind,
    owner_label,
    parse_nf_hooks,
)


def _sim_kernel(lab, what: str):
    modelled = getattr(lab.backend, "modelled_kernel", None)
    if modelled is None or modelled() is None:  # a real kernel (nothing started for it)
        raise LabError(f"{what} watches the modelled kernel run: it needs the sim backend "
                       f"(this lab is {lab.backend.name}); hooks() works everywhere")
    lab.start()
    return modelled()


def hooks(lab, machine: str = "vm", family: str = "ipv4") -> HookChain:
    """The hook chain of ``machine`` (``vm`` or ``host``) on any backend."""
    lab.start()
    k = lab.backend.modelled_kernel()
    if k is not None:
        ns = k.netns(machine)
        lanes = tuple((name, tuple(Callback(name, o.priority, o.hook, o.owner)
                                   for o in ns.nf.entries(family, i)))
                      for i, name in enumerate(HOOKS))
        return HookChain(machine, family, lab.kernel, lab.backend.name, lanes)
    prefix = "@host " if machine == "host" else ""
    r = lab.run(prefix + "sudo list-nf-hooks")
    if r is None or r.status != 0:
        raise LabError(f"list-nf-hooks failed on {lab.backend.name}: {(r.output if r else '').strip()[:200]}")
    return parse_nf_hooks(r.output, machine, family, lab.kernel, lab.backend.name)


def compare(script: str, line: Optional[str] = None, kernels: Tuple[str, str] = ("5.10", "6.18"),
            machine: str = "vm") -> Comparison:
    """Run ``script`` on two sim labs (two kernel profiles); compare the hook chains of
    ``machine``, or, with ``line``, the paths of that command's packets."""
    from .lab import Lab

    out = []
    for k in kernels:
        with Lab("sim", kernel=k) as lab:
            lab.script(script)
            out.append(path(lab, line) if line else hooks(lab, machine))
    return Comparison(out[0], out[1])


def observe(lab, action, command: str = "") -> Tuple[PacketPath, CtLifecycle]:
    """Run ``action()`` (a callable returning output text) on the sim with path recording
    and tracing on; returns what the packets met and what became of conntrack entries."""
    k = _sim_kernel(lab, "observing a packet path")
    from .sim.recorder import Recorder, session_ports

    rec = Recorder(k, session_ports(k))
    with rec:
        out = action() or ""
    chains = tuple(hooks(lab, m) for m in ("host", "vm"))
    packets = rec.packets()
    lc = CtLifecycle(command, out, lab.kernel, rec.histories())
    return PacketPath(command, out, lab.kernel, packets, chains), lc


def _run_line(lab, line: str):
    def action():
        r = lab.run(line)
        return str(r) if r is not None else ""
    return action


def path(lab, line: str) -> PacketPath:
    """Run one lab command on the sim and return each packet's path through the hooks."""
    return observe(lab, _run_line(lab, line), line)[0]


def lifecycle(lab, line: str) -> CtLifecycle:
    """Run one lab command on the sim and return the life of each conntrack entry it touched."""
    return observe(lab, _run_line(lab, line), line)[1]


def send(lab, machine: str, saddr: str, daddr: str, sport: int, dport: int, flags: str = "S",
         seq: int = 1000, ack: int = 0) -> SentPacket:
    """Inject one TCP segment on the sim: built as an skb and handed to ``ip_local_out`` of
    ``machine``'s namespace, then the kernel settles (replies and all). ``flags`` uses
    tcpdump letters: ``S`` SYN, ``.`` ACK, ``F`` FIN, ``R`` RST, ``P`` PSH."""
    from .sim.kernel.skb import ACK, FIN, PSH, RST, SYN, SYN_OPTIONS_LEN, Skb

    bits = {"S": SYN, ".": ACK, "A": ACK, "F": FIN, "R": RST, "P": PSH}
    f = 0
    for ch in flags:
        if ch not in bits:
            raise LabError(f"unknown TCP flag {ch!r} (S . F R P)", token=ch)
        f |= bits[ch]
    k = _sim_kernel(lab, "sending a packet")
    ns = k.netns(machine)
    shown = f"send {flags} {saddr}:{sport} → {daddr}:{dport} from {machine}"

    def action():
        skb = Skb(saddr, daddr, sport, dport, f, seq, ack if f & ACK else 0, 0,
                  SYN_OPTIONS_LEN if f & SYN else 12)
        k.stack.ip_local_out(ns, skb)
        k.settle()
        return ""
    p, lc = observe(lab, action, shown)
    return SentPacket(p, lc)
