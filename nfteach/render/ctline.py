"""One ``conntrack -L`` line, as conntrack-tools 1.4.x prints an IPv4 entry.

Shared by the simulator's ``conntrack`` and by the drgn walkers that read a real kernel's
table (``nfteach.introspect.conntrack``), so both print exactly the same text.
"""
from __future__ import annotations

from typing import Optional, Sequence

IPS_SEEN_REPLY, IPS_ASSURED = 2, 4
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp"}


def conntrack_line(proto: int, timeout: int, state: Optional[str], orig: Sequence, reply: Sequence,
                   status: int, mark: int = 0, secctx: str = "", use: int = 1) -> str:
    """``orig``/``reply`` are (src, dst, sport, dport); ``status`` the IPS_* bits."""
    head = f"{PROTO_NAMES.get(proto, 'unknown'):<8} {proto} {timeout}" + (f" {state}" if state else "")
    parts = [head, "src={} dst={} sport={} dport={}".format(*orig)]
    if not status & IPS_SEEN_REPLY:
        parts.append("[UNREPLIED]")
    parts.append("src={} dst={} sport={} dport={}".format(*reply))
    if status & IPS_ASSURED:
        parts.append("[ASSURED]")
    parts.append(f"mark={mark}")
    if secctx:
        parts.append(f"secctx={secctx}")
    parts.append(f"use={use}")
    return " ".join(parts)
