"""Which lab commands the live backend runs, and how: real tool, emulation, or an honest refusal.

Every tool gets an argument list; a few arguments are refused because they would reach
outside the lab (the machine's root namespace, other processes) or run other programs:

* ``ip``: anything naming ``netns`` (``ip netns exec``, ``ip link set X netns 1``,
  ``-n``/``-netns``) and ``-b``/``-batch``;
* ``iptables*``: ``--modprobe``/``-M`` (runs a program);
* ``bpftrace``: ``--unsafe`` and ``-c`` (run programs);
* ``sysctl``: writes to keys outside ``net.``, and ``-p``/``--system`` (load files);
* ``dmesg``: options that clear the log or change the console;
* ``cat``: only tracefs files and ``/proc/net``, ``/proc/sys/net``;
* ``modprobe``/``rmmod``: only ``nf_conntrack`` (emulated, see ``docs/lab-contract.md``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from ..model import notes
from ..model.errors import UnsupportedCommand

#: handled specially: emulated, or probed and refused with the backend that has them
EMULATED = ("modprobe", "rmmod")
PROBED = ("list-nf-hooks", "drgn", "trace-cmd")
#: the lab's vocabulary (shared by every backend); all the rest run for real in the namespace
SUPPORTED = tuple(notes.LAB_COMMANDS)
REAL_TOOLS = tuple(c for c in SUPPORTED if c not in EMULATED + PROBED)

CAT_ALLOWED = ("/sys/kernel/tracing/", "/sys/kernel/debug/tracing/", "/proc/net/", "/proc/sys/net/")


def supported_text() -> str:
    return ", ".join(SUPPORTED)


class UnknownCommand(UnsupportedCommand):
    """Not a lab command at all (status 127, like the lab and a shell)."""


def _refuse(msg: str, token: str) -> None:
    raise UnsupportedCommand(msg, token=token)


def check_ip(argv: Sequence[str]) -> None:
    out = "is not available in the lab (it would leave the lab's namespaces)"
    obj_seen = False
    for a in argv[1:]:
        if "netns" in a.lower():
            _refuse(f"ip: {a!r} {out}", a)
        if a.startswith("-") and not obj_seen:
            opt = a.lstrip("-")
            if opt and "netns".startswith(opt):
                _refuse(f"ip: {a!r} {out}", a)
            if opt and "batch".startswith(opt):
                _refuse(f"ip: {a!r} (batch files) is not available in the lab", a)
            continue
        if not obj_seen:
            obj_seen = True
            if len(a) >= 3 and "netns".startswith(a):
                _refuse(f"ip: {a!r} {out}", a)
        elif "netns".startswith(a.lower()) and a:
            _refuse(f"ip: {a!r} {out}", a)


def check_iptables(argv: Sequence[str]) -> None:
    for a in argv[1:]:
        if a == "-M" or a.startswith("--modprobe"):
            _refuse(f"{argv[0]}: {a!r} is not available in the lab (it runs a program)", a)


def check_bpftrace(argv: Sequence[str]) -> None:
    for a in argv[1:]:
        if a == "--unsafe" or a == "-c" or (a.startswith("-c") and not a.startswith("--")):
            _refuse(f"bpftrace: {a!r} is not available in the lab (it runs programs)", a)


def check_sysctl(argv: Sequence[str]) -> None:
    for a in argv[1:]:
        if a in ("-p", "--load", "--system", "-f") or a.startswith("--load=") or a.startswith("-p"):
            _refuse(f"sysctl: {a!r} (loading settings from files) is not available in the lab", a)
        if not a.startswith("-") and "=" in a:
            key = a.split("=", 1)[0].replace("/", ".").strip()
            if not key.startswith("net."):
                _refuse(f"sysctl: writing {key!r} is not available in the lab "
                        "(only net.* keys, which belong to the lab's namespace)", a)


def check_cat(argv: Sequence[str]) -> None:
    paths = [a for a in argv[1:] if not a.startswith("-")]
    if not paths:
        _refuse("cat: give a tracefs file (e.g. /sys/kernel/tracing/trace) or a /proc/net file", "cat")
    for p in paths:
        if ".." in p.split("/") or not p.startswith(CAT_ALLOWED):
            _refuse(f"cat: {p!r}: the lab reads only tracefs files ({CAT_ALLOWED[0]}...) "
                    "and /proc/net, /proc/sys/net", p)


def check_dmesg(argv: Sequence[str]) -> None:
    for a in argv[1:]:
        if a in ("-C", "-c", "-D", "-E", "-n") or a.startswith(("--clear", "--read-clear", "--console")) or (
            a.startswith("-") and not a.startswith("--") and any(ch in a[1:] for ch in "cCDEn")
        ):
            _refuse(f"dmesg: {a!r} changes the machine's kernel log or console; "
                    "the lab only reads it", a)


CHECKS = {
    "dmesg": check_dmesg,
    "ip": check_ip,
    "iptables": check_iptables,
    "iptables-legacy": check_iptables,
    "iptables-nft": check_iptables,
    "bpftrace": check_bpftrace,
    "sysctl": check_sysctl,
    "cat": check_cat,
}


def check(argv: Sequence[str]) -> None:
    """Raise UnsupportedCommand for a command the live backend will not run."""
    name = argv[0]
    if "/" in name:
        _refuse(f"{name}: run tools by name, not by path (supported: {supported_text()})", name)
    if name not in SUPPORTED:
        raise UnknownCommand(notes.unknown_command(name).removeprefix("nfteach: "), token=name)
    fn = CHECKS.get(name)
    if fn:
        fn(argv)


def conntrack_modules(argv: Sequence[str]) -> Optional[List[str]]:
    """Module names of a ``modprobe``/``rmmod`` line, or None when it has options we do not emulate."""
    mods = [a for a in argv[1:] if not a.startswith("-") and "=" not in a]
    return mods
