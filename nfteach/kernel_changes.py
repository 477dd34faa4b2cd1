"""What changed between kernels, read from running labs (notebook 10).

``SCRIPT`` runs the article's drop on each kernel and asks the kernel what it has; ``Changes``
turns the transcripts into one row per question and one column per kernel. Nothing here
knows a kernel's answer: every cell is parsed from what that kernel's lab printed.

>>> from nfteach import course
>>> from nfteach.lab import Lab
>>> with Lab("sim", kernel="6.12") as lab:
...     t = course.side_by_side(lab, SCRIPT, ["6.1", "6.12"])
>>> c = Changes(t.runs)
>>> c.value("confirm", "6.1"), c.value("confirm", "6.12")
('ipv4_confirm', 'nf_confirm')
"""
from __future__ import annotations

import html
import re
from typing import Dict, List, Optional, Tuple

#: the article's drop, then what the kernel has: hooks, the unconfirmed list, attach points
SCRIPT = """sudo modprobe nf_conntrack enable_hooks=1
sudo iptables-legacy -t filter -A INPUT -p tcp --dport 2570 -j DROP
@host nc -w 1 -z 192.168.122.204 2570
sudo list-nf-hooks
sudo bpftrace -l 'kprobe:nf_ct_*unconfirmed*'
sudo bpftrace -l 'kprobe:destroy_conntrack'
sudo bpftrace -l 'kprobe:nf_ct_destroy'
sudo bpftrace -l 'kprobe:kfree_skb'
sudo bpftrace -l 'kprobe:*kfree_skb_reason'
sudo bpftrace -l 'kprobe:sk_skb_reason_drop'
sudo conntrack -L unconfirmed
"""

#: (key, label) of the rows, in order
ROWS: Tuple[Tuple[str, str], ...] = (
    ("confirm", "conntrack confirm hook (ipv4 LOCAL_IN, last)"),
    ("filter", "iptables filter hook (ipv4 LOCAL_IN, priority 0)"),
    ("unconfirmed_fns", "kprobes on unconfirmed-list functions"),
    ("destroy", "destroy function (kprobe)"),
    ("free_skb", "frees a dropped packet (kprobe)"),
    ("unconfirmed_dump", "`conntrack -L unconfirmed`"),
)


def _results(t) -> list:
    return list(getattr(t, "results", []))


def _listed(t, pattern: str) -> Optional[List[str]]:
    """Functions `bpftrace -l 'PATTERN'` listed; None if bpftrace could not list kprobes here."""
    for r in _results(t):
        if r.command.startswith("sudo bpftrace -l") and f"'{pattern}'" in r.command:
            if r.status != 0 or "ERROR" in r.output or r.output.startswith("nfteach:"):
                return None
            return [ln.split(":", 1)[1].strip() for ln in r.output.splitlines() if ln.startswith("kprobe:")]
    return None


def _hooks(t) -> List[Tuple[int, List[str]]]:
    from .course.parsers import nf_hooks

    last = [r for r in _results(t) if r.command.strip() == "sudo list-nf-hooks"]
    return nf_hooks(last[-1].output).get(("ipv4", "LOCAL_IN"), []) if last else []


def row_values(t) -> Dict[str, str]:
    """One kernel's answers, parsed from its transcript."""
    hooks = _hooks(t)
    confirm = [fn for _, fns in hooks for fn in fns if "confirm" in fn]
    filt = [fns[0] for prio, fns in hooks if prio == 0]
    out = {"confirm": confirm[-1] if confirm else "—", "filter": filt[0] if filt else "—"}
    fns = _listed(t, "kprobe:nf_ct_*unconfirmed*")
    out["unconfirmed_fns"] = "no kprobes here" if fns is None else (", ".join(fns) or "none")
    for key, patterns in (("destroy", ("kprobe:destroy_conntrack", "kprobe:nf_ct_destroy")),
                          ("free_skb", ("kprobe:kfree_skb", "kprobe:*kfree_skb_reason", "kprobe:sk_skb_reason_drop"))):
        found = [_listed(t, p) for p in patterns]
        if all(f is None for f in found):
            out[key] = "no kprobes here"
        else:
            names = [n for f in found if f for n in f]
            out[key] = names[-1] if names else "—"  # the newer name wins (kfree_skb_reason → sk_skb_reason_drop)
    dump = [r for r in _results(t) if r.command.strip() == "sudo conntrack -L unconfirmed"]
    if not dump:
        out["unconfirmed_dump"] = "—"
    elif dump[-1].status:
        out["unconfirmed_dump"] = f"fails (status {dump[-1].status})"
    else:
        m = re.findall(r"(\d+) flow entries have been shown", dump[-1].output)
        out["unconfirmed_dump"] = f"succeeds, {m[-1]} entries" if m else "succeeds"
    return out


class Changes:
    """Rows of ``ROWS`` × one column per kernel, from the transcripts ``runs`` ({kernel: t})."""

    def __init__(self, runs: Dict[str, object]):
        self.names = list(runs)
        self.cols = {k: row_values(t) for k, t in runs.items()}
        w = max(len(label) for _, label in ROWS)
        cw = {n: max([len(n)] + [len(v) for v in self.cols[n].values()]) for n in self.names}
        lines = [f"{'':{w}}  " + "  ".join(f"{n:{cw[n]}}" for n in self.names)]
        for key, label in ROWS:
            lines.append(f"{label:{w}}  " + "  ".join(f"{self.cols[n][key]:{cw[n]}}" for n in self.names))
        self.text = "\n".join(line.rstrip() for line in lines)

    def value(self, key: str, kernel: str) -> str:
        return self.cols[kernel][key]

    def changed(self, key: str) -> bool:
        return len({c[key] for c in self.cols.values()}) > 1

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(n)}</th>" for n in self.names)
        body = ""
        for key, label in ROWS:
            style = ' style="background:#fff4d6"' if self.changed(key) else ""
            body += (f"<tr{style}><td>{html.escape(label)}</td>" +
                     "".join(f"<td><code>{html.escape(self.cols[n][key])}</code></td>" for n in self.names) + "</tr>")
        return f"<table><tr><th></th>{head}</tr>{body}</table>"
