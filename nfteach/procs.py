"""This machine's processes, told apart across PID reuse (``live`` and ``vm`` both record
the processes they start, so a later run can tell whether they are still running)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def proc_starttime(pid: int) -> Optional[int]:
    """Start time of ``pid`` in clock ticks since boot; None when there is no such process
    (or only its zombie, waiting to be reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: fields start after the last ')'
    rest = stat[stat.rindex(")") + 2 :].split()
    if rest[0] in ("Z", "X"):  # field 3, state
        return None
    return int(rest[19])  # field 22
