"""The smallest script that still shows a divergence (greedy one-line-at-a-time reduction).

A divergence is identified by the command that diverged, which stays the last line of every
candidate: a candidate "still shows it" when that line's verdict is divergent or refused. Lines after
that command are dropped at once (they cannot cause it); then each earlier line is tried
away, last first, and left out if the divergence survives. Each try runs the script on both
backends, so the number of tries is capped (``budget``).
"""
from __future__ import annotations

from typing import Callable, List, Sequence

from .compare import compare


def _ends_job(line: str) -> bool:
    return line.split()[:1] in (["kill"], ["wait"])


def _valid(lines: Sequence[str]) -> bool:
    """Every ``kill``/``wait`` has a background job started before it."""
    jobs = 0
    for ln in lines:
        if ln.rstrip().endswith("&"):
            jobs += 1
        elif _ends_job(ln):
            if not jobs:
                return False
            jobs -= 1
    return True


def shows(run_pair: Callable, lines: Sequence[str]) -> bool:
    """The last line of ``lines`` (the diverging command) still diverges or is refused."""
    model, real = run_pair(list(lines))
    verdicts = compare(model, real, getattr(run_pair, "releases", ()))
    return len(verdicts) == len(lines) and verdicts[-1].verdict in ("divergent", "refused")


def shrink(run_pair: Callable, lines: Sequence[str], index: int, budget: int = 12) -> List[str]:
    """``lines`` reduced around the command at ``index`` (the index among ``lines``)."""
    cur = list(lines[: index + 1])
    tries = 0
    i = index - 1
    while i >= 0 and tries < budget:
        cand = cur[:i] + cur[i + 1:]
        if _valid(cand):
            tries += 1
            if shows(run_pair, cand):
                cur = cand
        i -= 1
    return cur
