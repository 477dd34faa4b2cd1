"""Two transcripts of one script, compared command by command after ``normalize``.

Every command gets one verdict:

* ``same``        — equal after :func:`nfteach.normalize.normalize` (output and exit status);
  a ``function_graph`` trace: the same calls packet by packet (:mod:`.graph`);
* ``divergent``   — the model answered something the kernel did not;
* ``refused``     — the model refused with its one-line ``nfteach:`` error where the real
  kernel ran the command; ``refused (non-goal)`` when the refusal is one of the documented
  non-goals of docs/simulator.md (:data:`NON_GOALS`), which is not counted as divergent;
* ``after non-goal`` — a difference after a documented non-goal was refused in the same
  script: the kernel ran that line, the model did not, so their states have parted (a
  `-j LOG` rule that the kernel added still shows in its listings); not counted, reported;
* ``unobservable`` — the real backend itself cannot observe this on its kernel (the live
  backend's one-line refusal naming ``--backend vm``; the step that ends such a job too),
  or it failed with its own one-line ``nfteach:`` error where the model answered (a guest
  too slow under load): there is nothing to compare with, on both sides.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from typing import List, Sequence

from ..normalize import normalize, release
from . import graph

#: refusals of the simulator for what it deliberately does not model (docs/simulator.md,
#: "Non-goals"): the pattern is searched in the simulator's one-line error
NON_GOALS = (
    re.compile(r"^nfteach: nc: option -u is not modelled"),
    re.compile(r"^nfteach: iptables -j (LOG|REJECT) is not modelled"),
)


def kind(command: str) -> str:
    """The row of the report a command belongs to: the tool and what it does."""
    line = command.split("|", 1)[0].strip().removeprefix("@host ").strip()
    try:
        argv = shlex.split(line)
    except ValueError:
        argv = line.split()
    if argv and argv[0] == "sudo":
        argv = argv[1:]
    if not argv:
        return "?"
    tool = argv[0]
    if tool in ("iptables", "iptables-legacy", "iptables-nft"):
        op = next((a for a in argv[1:] if a.startswith("-") and a not in ("-t", "-n", "-v", "-w") and a[1:2].isupper()),
                  "?")
        return f"{tool} {op}"
    if tool == "nft":
        words = [a for a in argv[1:] if not a.startswith("-")]
        return "nft " + " ".join(words[:2])
    if tool == "conntrack":
        return f"conntrack {argv[1] if len(argv) > 1 else ''}".strip()
    if tool == "nc":
        return "nc -u" if "-u" in argv else "nc"
    if tool == "bpftrace":
        return "bpftrace &" if line.endswith("&") else "bpftrace"
    if tool == "trace-cmd":
        return f"trace-cmd {argv[1] if len(argv) > 1 else ''}".strip()
    if tool == "sysctl":
        return "sysctl -w" if "-w" in argv else "sysctl"
    return tool


@dataclass
class Verdict:
    index: int
    machine: str
    command: str
    kind: str
    verdict: str            # same | divergent | refused | refused (non-goal) | unobservable
    model: str = ""         # normalised outputs, for the report
    kernel: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _own_error(output: str) -> bool:
    return output.startswith("nfteach: ") and output.count("\n") == 1


def _timed_out(output: str) -> bool:
    """The real backend gave up on a job that did not end in time (its own last line):
    a guest too slow under load, nothing the kernel said."""
    last = output.rstrip("\n").rsplit("\n", 1)[-1]
    return last.startswith("nfteach: ") and " did not end within " in last


def _unobservable(output: str) -> bool:
    return _own_error(output) and "--backend vm" in output


def _shown(r, releases: Sequence[str] = ()) -> str:
    return release(normalize(r.output), *releases) + (f"[exit {r.status}]\n" if r.status else "")


def compare(model: Sequence, real: Sequence, releases: Sequence[str] = ()) -> List[Verdict]:
    """Verdicts for two lists of ``CommandResult`` of the same script (model = sim);
    ``releases``: kernel build names to hide (normalize rule 9, sim 6.18 vs live only)."""
    out: List[Verdict] = []
    pending_job = False
    after_non_goal = False  # the kernel ran a line the model refuses: their states part
    for i, (m, k) in enumerate(zip(model, real)):
        v = Verdict(i, k.machine, k.command, kind(k.command), "same")
        first = k.command.split()[0] if k.command.split() else ""
        ends_job = pending_job and first in ("kill", "wait")
        # the real backend's own one-line error where the model answered (a facility this
        # kernel lacks; a guest too slow under load: "bpftrace did not end within 120 s")
        real_failed = (_own_error(k.output) or _timed_out(k.output)) and not _own_error(m.output) \
            and k.output.strip() != m.output.strip()
        if _unobservable(k.output) or ends_job or real_failed:
            v.verdict = "unobservable"
            pending_job = k.command.endswith("&") and not ends_job
            out.append(v)
            continue
        a, b = _shown(m, releases), _shown(k, releases)
        if a != b and m.status == k.status and graph.is_graph(m.output) and graph.is_graph(k.output) \
                and graph.same_graph(m.output, k.output):
            a = b  # the same calls, packet by packet (nfteach/fidelity/graph.py: the noise it leaves out)
        if a != b:
            v.model, v.kernel = a, b
            if _own_error(m.output) and not _own_error(k.output):
                v.verdict = "refused (non-goal)" if any(p.search(m.output) for p in NON_GOALS) else "refused"
                after_non_goal = after_non_goal or v.verdict == "refused (non-goal)"
            elif after_non_goal:
                v.verdict = "after non-goal"
            else:
                v.verdict = "divergent"
        out.append(v)
    return out


def first_problem(verdicts: Sequence[Verdict]):
    """The first verdict that counts against the model (divergent or refused), or None."""
    return next((v for v in verdicts if v.verdict in ("divergent", "refused")), None)
