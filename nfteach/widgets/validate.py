"""Checks of widget input: each returns a clean value or raises ``WidgetInputError`` with a
one-line message. Nothing a learner types reaches a command line unchecked; what does is
quoted with ``shlex.quote`` and run by ``Lab.run`` (never a shell)."""
from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Iterable, Sequence

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: named stops of the priority control (enum nf_ip_hook_priorities)
PRIORITY_STOPS = (("raw", -300), ("conntrack", -200), ("mangle", -150), ("filter", 0),
                  ("confirm", INT_MAX))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$")
IPT_TABLES = ("raw", "mangle", "filter", "nat", "security")
IPT_CHAINS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
NFT_HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
TCP_FLAGS = {"SYN": "S", "ACK": ".", "FIN": "F", "RST": "R", "PSH": "P"}


class WidgetInputError(ValueError):
    """A value a widget refuses; ``str()`` is the one-line message it shows."""


def _shown(v) -> str:
    s = str(v)
    return repr(s if len(s) <= 40 else s[:37] + "...")


def priority(v) -> int:
    s = str(v).strip()
    for name, p in PRIORITY_STOPS:
        if s.lower() == name:
            return p
    if s.upper() == "INT_MAX":
        return INT_MAX
    if s.upper() == "INT_MIN":
        return INT_MIN
    if not re.fullmatch(r"[+-]?\d{1,10}", s) or not INT_MIN <= int(s) <= INT_MAX:
        raise WidgetInputError(f"priority must be an integer from {INT_MIN} to {INT_MAX} or one of "
                               f"{', '.join(n for n, _ in PRIORITY_STOPS)}; not {_shown(v)}")
    return int(s)


def port(v, what: str = "port") -> int:
    s = str(v).strip()
    if not re.fullmatch(r"\d{1,5}", s) or not 1 <= int(s) <= 65535:
        raise WidgetInputError(f"{what} must be a number from 1 to 65535, not {_shown(v)}")
    return int(s)


def name(v, what: str = "name") -> str:
    s = str(v)
    if not _NAME.fullmatch(s):
        raise WidgetInputError(f"{what} must be letters, digits and _ (at most 31, not starting with a "
                               f"digit), not {_shown(v)}")
    return s


def one_of(v, choices: Sequence[str], what: str) -> str:
    if v not in choices:
        raise WidgetInputError(f"{what} must be one of {', '.join(choices)}, not {_shown(v)}")
    return v


def ipv4(v, what: str = "address") -> str:
    s = str(v).strip()
    try:
        return str(ipaddress.IPv4Address(s))
    except ValueError:
        raise WidgetInputError(f"{what} must be an IPv4 address like 192.168.122.204, not {_shown(v)}") from None


def flags(names: Iterable[str]) -> str:
    out = ""
    for n in names:
        out += TCP_FLAGS[one_of(n, tuple(TCP_FLAGS), "a TCP flag")]
    if not out:
        raise WidgetInputError("pick at least one TCP flag (SYN, ACK, FIN, RST, PSH)")
    return out


def line(argv: Sequence[str]) -> str:
    """A lab command line from an argument list: every argument quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)
