"""Conntrack entries of a lab namespace, read over netlink with pyroute2.

The dump runs in a helper process (``ip netns exec NS python3 helpers/ct_dump.py``), so
this process never calls ``setns()``. ``CtEntry.line_key()`` gives what ``conntrack -L``
prints for the same entry minus the timeout, so tests can cross-check the two.

>>> lab.backend.conntrack_entries()[0].line_key()      # doctest: +SKIP
'tcp ESTABLISHED src=192.168.122.1 dst=192.168.122.204 sport=41022 dport=22 src=192.168.122.204 dst=192.168.122.1 sport=22 dport=41022 [ASSURED]'
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..model.errors import BackendUnavailable
from .runner import ENV

HELPER = Path(__file__).resolve().parent / "helpers" / "ct_dump.py"


@dataclass(frozen=True)
class CtTuple:
    src: str
    dst: str
    sport: Optional[int]
    dport: Optional[int]

    def text(self) -> str:
        s = f"src={self.src} dst={self.dst}"
        if self.sport is not None:
            s += f" sport={self.sport} dport={self.dport}"
        return s


@dataclass(frozen=True)
class CtEntry:
    """One conntrack entry: tuples, protocol, TCP state, status flags, timeout (s)."""

    proto: str
    protonum: int
    orig: CtTuple
    reply: CtTuple
    state: Optional[str]
    flags: Tuple[str, ...]
    timeout: Optional[int]
    mark: Optional[int] = None
    use: Optional[int] = None

    @property
    def assured(self) -> bool:
        return "ASSURED" in self.flags

    @property
    def unreplied(self) -> bool:
        return "SEEN_REPLY" not in self.flags

    def line_key(self) -> str:
        """The ``conntrack -L`` line without timeout, mark, use and zone."""
        parts = [self.proto]
        if self.state:
            parts.append(self.state)
        parts.append(self.orig.text())
        if self.unreplied:
            parts.append("[UNREPLIED]")
        parts.append(self.reply.text())
        if self.assured:
            parts.append("[ASSURED]")
        return " ".join(parts)


def _tuple(d: dict) -> CtTuple:
    return CtTuple(d["src"], d["dst"], d.get("sport"), d.get("dport"))


def parse(data: list) -> List[CtEntry]:
    out = []
    for e in data:
        out.append(CtEntry(
            proto=e["proto_name"], protonum=e["proto"], orig=_tuple(e["orig"]), reply=_tuple(e["reply"]),
            state=e["state"], flags=tuple(e["flags"]), timeout=e["timeout"], mark=e.get("mark"),
            use=e.get("use"),
        ))
    return out


def dump_entries(exec_prefix: Sequence[str]) -> List[CtEntry]:
    """Entries of the namespace that ``exec_prefix`` (``ip netns exec NS``) enters."""
    p = subprocess.run([*exec_prefix, sys.executable, "-I", str(HELPER)], capture_output=True,
                       text=True, timeout=30, env=dict(ENV))
    if p.returncode != 0:
        msg = p.stderr.strip().splitlines()[-1:] or [str(p.returncode)]
        raise BackendUnavailable(f"reading conntrack over netlink failed ({msg[0]}); "
                                 "install pyroute2 (pip install 'nfteach[live]')")
    return parse(json.loads(p.stdout))


def conntrack_l_key(line: str) -> Optional[str]:
    """The same key, from one line of ``conntrack -L``; None for summary/other lines."""
    words = line.split()
    if len(words) < 3 or not words[1].isdigit():
        return None
    proto = words[0]
    rest = words[3:]  # after "tcp 6 TIMEOUT"
    keep = [w for w in rest if not w.startswith(("mark=", "use=", "zone=", "secctx=", "id="))]
    return " ".join([proto, *keep])
