"""Normalise a lab transcript so runs on different backends (and different runs) compare equal.

``normalize(text)`` rewrites exactly these things, each because it legitimately differs
between two correct runs; everything else is kept byte for byte:

1. **Ephemeral ports.** ``sport=N``/``dport=N`` (conntrack), ``spt:N``/``dpt:N``
   (iptables), ``sport N``/``dport N`` (nft) and ``ADDR:N`` (ss, bpftrace) become
   ``PORT`` when N is not a well-known port of the scenarios (:data:`KEEP_PORTS`: 22,
   2570, 2571, and 0-1023). The kernel picks client ports at random.
2. **Order of conntrack entries.** Consecutive ``conntrack -L`` entry lines are sorted
   (after 1 and 3), because the kernel lists them in hash-bucket order and the hash is
   seeded at random (``nf_conntrack_hash_rnd``).
3. **Conntrack timeouts.** The third column of a ``conntrack -L`` line
   (``tcp      6 431999 ESTABLISHED``) becomes ``TIMEOUT``: it counts down in seconds,
   so the same entry shows 118 or 117 depending on when you look. The state, flags and
   tuples, which say what happened, are kept.
4. **Timestamps.** ftrace/trace_pipe stamps (``1234.567890:``), kernel log stamps
   (``[   21.791670]`` at the start of a ``dmesg`` line), bpftrace ``time()``
   (``HH:MM:SS``) and ``nsecs``-style 16+ digit numbers become ``TIMESTAMP``.
5. **PIDs and CPUs** in ftrace lines (``nc-4711  [001]``) become ``PID`` and ``[CPU]``;
   ``pid=N``/``pid N`` become ``pid=PID``/``pid PID``.
6. **Kernel object addresses** (``0xffff…`` and bare ``ffff`` + 12 hex digits) become
   ``ADDR``; MAC addresses after ``link/ether`` become ``MAC`` (veth pairs get random ones).
7. **Lab names**: ``nfteach-<pid>-<hex>-vm`` becomes ``nfteach-LAB-vm``.
8. **Kernel release past major.minor.** A release (``6.18.7-2-custom``) after
   ``/lib/modules/``, after ``vermagic:``, and as a whole line (``uname -r``) becomes
   ``6.18.RELEASE``: machines running the same kernel version differ in patch level and
   build name, and a profile describes a version (``nfteach/model/profiles/6.18.toml``; the
   live backend picks the profile by major.minor). Major and minor are kept, so a
   transcript of another kernel version still differs.

10. **Where nft's iptables-nft warning lands.** nft prints ``# Warning: table ip filter is
   managed by iptables-nft, do not touch!`` on stderr just before that table's listing on
   stdout, and flushes stdout piece by piece: a reader of both pipes (the vm guest's agent
   reads stdout first when both are ready) may put the warning after the first pieces of
   the table (``table ip filter { ## Warning: ...``, vm 5.10 with ``nft -a``). A warning
   found after its own table's ``table ip filter {`` line goes back to just before it.
   Likewise iptables-nft's ``# Warning: iptables-legacy tables present, ...`` (stderr,
   written before the listing; seen after ``-P INPUT ACCEPT`` once in 200 scripts on vm
   5.10) goes back to the start of its command's output.

11. **function_graph CPU and durations.** A ``function_graph`` trace line's CPU column and
   duration (`` 1) ! 766.513 us  |``) become ``CPU)`` and ``DURATION``: which CPU ran the
   softirq and how long a call took (under TCG, with a cold cache) vary from run to run.
   Which calls were made, their nesting and which line carries a duration are kept.

Only in the differential tier (``nfteach fidelity``, :func:`release`), for ``sim 6.18`` vs
``live``:

9. **This machine's kernel build name.** ``uname -r`` of the live machine (in
   ``/lib/modules/6.18.44-...`` of a modprobe error, in ``uname -r``) and the 6.18 profile's
   release both become ``RELEASE``: the profile models the 6.18 kernel, not the build of
   whichever machine runs the comparison (a vm kernel's release is compared as is).

Not normalised, on purpose (each was measured to be the same in every run on the live
backend, 6.18):

* **nft and iptables packet/byte counters**, including the ones that count the session:
  each lab command is preceded by exactly one keystroke, i.e. three packets of fixed size
  (host->vm data 53 bytes, vm->host echo 53 bytes, host->vm ACK 52 bytes: IPv4 20 +
  TCP 20 + timestamps option 12 + payload), so a rule or policy that sees session traffic
  grows by a predictable amount per command. A simulator must model this, not hide it.
* ``use=N`` and ``mark=N`` in ``conntrack -L`` (always ``use=1``, ``mark=0`` here).
* nft rule/chain/table handles (deterministic in fresh namespaces).
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

#: ports the scenarios use on purpose; everything else >= 1024 is ephemeral
KEEP_PORTS = frozenset({22, 2570, 2571})

_CT_LINE = re.compile(r"^(?P<proto>[a-z0-9]+)(?P<sp1>\s+)(?P<num>\d+) (?P<timeout>\d+) (?P<rest>.*)$")
_PORT_KV = re.compile(r"\b(?P<key>sport|dport|spt|dpt)(?P<sep>[=:])(?P<port>\d{1,5})\b")
_PORT_NFT = re.compile(r"\b(?P<key>sport|dport) (?P<port>\d{1,5})\b")
_ADDR_PORT = re.compile(r"\b(?P<addr>\d{1,3}(?:\.\d{1,3}){3}|\*|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})\b")
_FTRACE_STAMP = re.compile(r"\b\d{1,9}\.\d{6}:")
_DMESG_STAMP = re.compile(r"^\[\s*\d+\.\d{6}\]")
_CLOCK = re.compile(r"\b\d{2}:\d{2}:\d{2}\b")
_NSECS = re.compile(r"\b\d{16,}\b")
_FTRACE_TASK = re.compile(r"(?P<comm>\S+)-(?P<pid>\d+)(?P<sp>\s+)\[(?P<cpu>\d{3})\]")
_PID_KV = re.compile(r"\bpid(?P<sep>[= ])\d+\b")
_KADDR = re.compile(r"\b(?:0x)?ffff[0-9a-f]{12}\b")
_MAC = re.compile(r"(?P<key>link/ether) (?:[0-9a-f]{2}:){5}[0-9a-f]{2}")
_RELEASE = re.compile(r"(?P<pre>/lib/modules/|vermagic:\s+|^)(?P<mm>\d+\.\d+)\.\d+(?:-[\w.+~-]+)?"
                      r"(?=/|\s|$)")
_NFT_WARN = re.compile(r"# Warning: table (?P<fam>\S+) (?P<name>\S+) is managed by iptables-nft, do not touch!\n")
_FGRAPH_DUR = re.compile(r"^(?P<sp> ?)\d+\) [ !+#*@$] *\d+\.\d+ us +\|")
_FGRAPH_CPU = re.compile(r"^(?P<sp> ?)\d+\) +\|")
_LAB = re.compile(r"\bnfteach-\d+-[0-9a-f]{6}-(?P<m>vm|host)\b")


def _keep(port: str, keep: Iterable[int]) -> bool:
    n = int(port)
    return n < 1024 or n in keep


def _ports(line: str, keep) -> str:
    line = _PORT_KV.sub(lambda m: m.group(0) if _keep(m["port"], keep) else f"{m['key']}{m['sep']}PORT", line)
    line = _PORT_NFT.sub(lambda m: m.group(0) if _keep(m["port"], keep) else f"{m['key']} PORT", line)
    line = _ADDR_PORT.sub(lambda m: m.group(0) if _keep(m["port"], keep) else f"{m['addr']}:PORT", line)
    return line


def _release(line: str) -> str:
    """Rule 8: the kernel release keeps major.minor (whole-line match only for `uname -r`)."""
    def sub(m):
        return f"{m['pre']}{m['mm']}.RELEASE"
    if _RELEASE.fullmatch(line):
        return sub(_RELEASE.fullmatch(line))
    return _RELEASE.sub(lambda m: sub(m) if m["pre"] else m.group(0), line)


def _ct_entry(line: str) -> Optional[str]:
    """A conntrack -L entry line with its timeout replaced, or None if it is not one."""
    m = _CT_LINE.match(line)
    if not m or "src=" not in m["rest"]:
        return None
    return f"{m['proto']}{m['sp1']}{m['num']} TIMEOUT {m['rest']}"


def _nft_warning(text: str) -> str:
    """Rule 10: an iptables-nft table warning that landed after the start of its table's
    listing goes back before it (a reader can only see it late, never early)."""
    pos = 0
    while True:
        m = _NFT_WARN.search(text, pos)
        if m is None:
            return text
        head = f"table {m['fam']} {m['name']} {{"
        start = text.rfind(head, 0, m.start())
        if start < 0 or (start > 0 and text[start - 1] != "\n"):
            pos = m.end()  # not after its table's line: where nft put it
            continue
        text = text[:start] + m.group(0) + text[start:m.start()] + text[m.end():]
        pos = m.end()


_XT_LEGACY_WARN = "# Warning: iptables-legacy tables present, use iptables-legacy to see them"


def _xt_legacy_warning(text: str) -> str:
    """Rule 10, iptables-nft's: its legacy-tables warning (stderr, written before the listing)
    goes back to the start of its command's output when a reader saw the listing first."""
    lines = text.split("\n")
    start = 0
    for i, line in enumerate(list(lines)):
        if line.startswith(("vm$ ", "host$ ")):
            start = i + 1
        elif line.startswith(_XT_LEGACY_WARN) and i > start:
            lines.insert(start, lines.pop(i))
    return "\n".join(lines)


def normalize(text: str, keep_ports: Iterable[int] = KEEP_PORTS) -> str:
    """The transcript ``text`` with what legitimately varies replaced (see the module doc)."""
    keep = frozenset(keep_ports)
    if "managed by iptables-nft" in text:
        text = _nft_warning(text)
    if _XT_LEGACY_WARN in text:
        text = _xt_legacy_warning(text)
    out, block = [], []

    def flush():
        out.extend(sorted(block))
        block.clear()

    for line in text.split("\n"):
        line = _ports(line, keep)
        line = _release(line)
        line = _LAB.sub(lambda m: f"nfteach-LAB-{m['m']}", line)
        line = _MAC.sub(lambda m: f"{m['key']} MAC", line)
        line = _KADDR.sub("ADDR", line)
        line = _FTRACE_TASK.sub(lambda m: f"{m['comm']}-PID{m['sp']}[CPU]", line)
        line = _FTRACE_STAMP.sub("TIMESTAMP:", line)
        line = _DMESG_STAMP.sub("[TIMESTAMP]", line)
        line = _NSECS.sub("TIMESTAMP", line)
        line = _CLOCK.sub("TIMESTAMP", line)
        line = _PID_KV.sub(lambda m: f"pid{m['sep']}PID", line)
        if ") " in line and "|" in line:
            line = _FGRAPH_DUR.sub(lambda m: f"{m['sp']}CPU) DURATION |", line)
            line = _FGRAPH_CPU.sub(lambda m: f"{m['sp']}CPU) |", line)
        ct = _ct_entry(line)
        if ct is not None:
            block.append(ct)
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out)


def release(text: str, *names: str) -> str:
    """``text`` with each kernel release in ``names`` replaced by ``RELEASE`` (rule 9)."""
    for name in sorted(filter(None, names), key=len, reverse=True):
        text = text.replace(name, "RELEASE")
    return text
