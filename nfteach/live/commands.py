"""Which lab commands the live backend runs, and how: real tool, emulation, or an honest refusal.

The wall between a lab command and the machine is the sandbox every command runs in
(``sandbox.py``): these checks are not it. They only turn what the sandbox would make
fail in a puzzling way into a one-line explanation. Options are matched as the tools'
getopt matches them (``--unsaf`` is ``--unsafe``, ``-qc`` contains ``-c``):

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


def long_option(a: str, names: Sequence[str]) -> bool:
    """Does ``a`` name one of the long options ``names``, as getopt_long reads it
    (any unambiguous prefix, ``=VALUE`` attached)?"""
    if not a.startswith("--") or a == "--":
        return False
    opt = a[2:].split("=", 1)[0]
    return bool(opt) and any(n.startswith(opt) for n in names)


def short_options(a: str, with_arg: str = "") -> str:
    """The short option letters of a cluster like ``-qc``, up to the first one that takes
    an argument (``with_arg``), whose argument the rest of the cluster is."""
    if not a.startswith("-") or a.startswith("--") or len(a) < 2:
        return ""
    out = ""
    for ch in a[1:]:
        out += ch
        if ch in with_arg:
            break
    return out


def check_ip(argv: Sequence[str]) -> None:
    out = "is not available in the lab (it would leave the lab's namespaces)"
    words = [a for a in argv[1:] if not a.startswith("-")]
    if len(words) >= 2 and "vrf".startswith(words[0]) and "exec".startswith(words[1]):
        _refuse(f"ip: {words[0]!r} {words[1]!r} is not available in the lab (it runs programs)", words[1])
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


#: bpftrace options that take an argument (bpftrace 0.17 getopt string "dbB:f:e:hlp:vqc:Vo:I:k")
_BPFTRACE_ARG = "BfepcoI"


def check_bpftrace(argv: Sequence[str]) -> None:
    args = argv[1:]
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if long_option(a, ("unsafe",)) or "c" in short_options(a, _BPFTRACE_ARG):
            _refuse(f"bpftrace: {a!r} is not available in the lab (it runs programs)", a)
        letters = short_options(a, _BPFTRACE_ARG)
        if letters and letters[-1] in _BPFTRACE_ARG and a.endswith(letters[-1]):
            skip = True  # the next argument is that option's value (a program text, a file)


def check_sysctl(argv: Sequence[str]) -> None:
    for a in argv[1:]:
        if long_option(a, ("load", "system")) or set(short_options(a, "pf")) & set("pf"):
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
        if long_option(a, ("clear", "read-clear", "console-off", "console-on", "console-level")) or (
            set(short_options(a, "FfklnsS")) & set("cCDEn")
        ):
            _refuse(f"dmesg: {a!r} changes the machine's kernel log or console; "
                    "the lab only reads it", a)


def check_modprobe(argv: Sequence[str]) -> None:
    for a in argv[1:]:
        if long_option(a, ("config", "dirname")) or set(short_options(a, "CdSo")) & set("Cd"):
            _refuse(f"modprobe: {a!r} (configuration and module files of your choice) "
                    "is not available in the lab", a)


CHECKS = {
    "modprobe": check_modprobe,
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
