"""What a rejection may look like: at most 3 lines, the first one naming the problem.

nft's own errors are 3 lines (message, the command, carets). A few real tools print more
on some errors, and the simulator reproduces them word for word; those texts are listed
here, each with the tool that prints it, so the rule stays strict for everything else.
"""
from __future__ import annotations

import re

#: multi-line texts real tools print, which the simulator copies (prefix of stderr)
REAL_LONG = (
    # netcat-openbsd: usage on a wrong number of operands / missing option argument
    "usage: nc [-46CDdFhklNnrStUuvZz] [-I length] [-i interval] [-M ttl]",
    "nc: option requires an argument -- 'w'\nusage: nc ",
    # iptables 1.8.x on `-t nat ... -j DROP` (xtables.c prints the message between blank lines)
    "\nThe \"nat\" table is not intended for filtering",
)

#: a first line that names the problem: "tool: what went wrong", nft's "Error: ...",
#: bpftrace's "stdin:1:21-22: ERROR: ...", Python's "[Errno 2] ..." (drgn), iptables 1.8.9's
#: "Bad argument `X'" for words left after its options (no "iptables vX: " prefix, measured on
#: both variants: tests/golden/*/fidelity-edges.txt)
FIRST = re.compile(r"^(Error: |Bad argument `|[\w./-]+:\d+(:\d+)?(-\d+)?: ERROR: |nfteach: |[\w./-]+( v[\d.]+ \([^)]*\))?: |usage: |sysctl: |cat: |"
                   r"conntrack v[\d.]+ \(conntrack-tools\): |iptables: |modprobe: |rmmod: |modinfo: |"
                   r"grep: |head: |tail: |wc: |nc: |# Warning: |Warning: |\[Errno \d+\] ).*\S")


def is_real_long(text: str) -> bool:
    return any(t in text for t in REAL_LONG)


#: tools whose real error output is several lines (warnings, probe attach errors) and runs
#: the learner's own code (drgn -e: a traceback of *that* code is what real drgn prints)
TRACING_TOOLS = ("bpftrace", "drgn", "trace-cmd")
_OUR_FRAME = re.compile(r'File "[^"]*nfteach[^"]*"')


def ours_traceback(text: str) -> bool:
    """A traceback through nfteach's own code (a learner's ``drgn -e`` code may raise)."""
    return "Traceback" in text and (bool(_OUR_FRAME.search(text)) or 'File "<string>"' not in text)


def problems(status: int, stderr: str, stdout: str = "", tool: str = "") -> list:
    """Why this result is not an acceptable rejection (empty list: fine)."""
    out = []
    text = stderr + stdout
    if "internal error" in text or ours_traceback(text):
        out.append("internal error / traceback")
    if status == 0 or not stderr or tool in TRACING_TOOLS:
        return out
    lines = stderr.rstrip("\n").split("\n")
    # one line per bad argument (modinfo, sysctl, cat do this) is a list of rejections
    one_per_arg = all(FIRST.match(ln) for ln in lines)
    if len(lines) > 3 and not is_real_long(stderr) and not one_per_arg:
        out.append(f"{len(lines)} lines of error (at most 3)")
    if not is_real_long(stderr) and not FIRST.match(lines[0]):
        out.append(f"first line does not name the problem: {lines[0][:80]!r}")
    return out
