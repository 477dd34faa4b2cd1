"""Parsing one lab command line into something a backend can run without a shell.

A line is ``[@host ][sudo ]CMD ARGS... [| FILTER ...]... [&]``. Quoting follows the
POSIX shell (``\\;`` and quotes work as in bash), but nothing is ever given to a shell:
``;``, ``&&``, redirections and substitutions are refused with a one-line error.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import List, Optional

from .model.errors import LabError

FILTERS = ("grep", "egrep", "fgrep", "head", "tail", "wc")
_FORBIDDEN = {
    ";": "';' (one command per line)",
    "&&": "'&&' (one command per line)",
    "||": "'||' (one command per line)",
    ">": "redirection '>'",
    "<": "redirection '<'",
    "`": "command substitution '`'",
    "$(": "command substitution '$('",
    "&": "'&' in the middle of a line",
}


@dataclass
class ParsedLine:
    machine: str
    argv: List[str]
    filters: List[List[str]] = field(default_factory=list)
    background: bool = False
    display: str = ""  # the command as the transcript shows it (without '@host ')


def _split_unquoted(line: str) -> List[str]:
    """Split at unquoted '|', refusing other shell operators outside quotes."""
    parts, cur, i, quote = [], [], 0, None
    n = len(line)
    while i < n:
        c = line[i]
        if quote:
            cur.append(c)
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and i + 1 < n:
                cur.append(line[i + 1])
                i += 1
            i += 1
            continue
        if c in "'\"":
            quote = c
            cur.append(c)
        elif c == "\\" and i + 1 < n:
            cur.append(c)
            cur.append(line[i + 1])
            i += 1
        elif c == "|":
            if line[i + 1 : i + 2] == "|":
                raise LabError(f"unsupported shell syntax {_FORBIDDEN['||']}", token="||")
            parts.append("".join(cur))
            cur = []
        elif c == "&":
            tok = "&&" if line[i + 1 : i + 2] == "&" else "&"
            raise LabError(f"unsupported shell syntax {_FORBIDDEN[tok]}", token=tok)
        elif c in ";><`":
            raise LabError(f"unsupported shell syntax {_FORBIDDEN[c]}", token=c)
        elif c == "$" and line[i + 1 : i + 2] == "(":
            raise LabError(f"unsupported shell syntax {_FORBIDDEN['$(']}", token="$(")
        else:
            cur.append(c)
        i += 1
    if quote:
        raise LabError(f"unterminated quote {quote} in command line", token=quote)
    parts.append("".join(cur))
    return parts


def parse_line(line: str) -> Optional[ParsedLine]:
    """Parse one line; ``None`` for blank lines and ``#`` comments."""
    if "\x00" in line:
        raise LabError("command line contains a NUL byte", token="\\0")
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    machine = "vm"
    if text.startswith("@"):
        head, _, rest = text.partition(" ")
        if head not in ("@host", "@vm"):
            raise LabError(f"unknown machine {head!r}; use '@host ' (or nothing for the vm)", token=head)
        machine = head[1:]
        text = rest.strip()
        if not text:
            raise LabError(f"nothing to run after {head}", token=head)
    background = False
    if text.endswith("&") and not text.endswith("&&") and not text.endswith("\\&"):
        background = True
        text = text[:-1].rstrip()
    segments = _split_unquoted(text)
    argvs = []
    for seg in segments:
        try:
            argv = shlex.split(seg, comments=False, posix=True)
        except ValueError as e:
            raise LabError(f"cannot parse command line: {e}") from None
        if not argv:
            raise LabError("empty command in a pipe", token="|")
        while argv and argv[0] == "sudo":
            argv = argv[1:]
        if not argv:
            raise LabError("nothing to run after sudo", token="sudo")
        argvs.append(argv)
    filters = argvs[1:]
    for f in filters:
        if f[0] not in FILTERS:
            raise LabError(
                f"unsupported pipe into {f[0]!r}; pipes into {', '.join(FILTERS[:3])}, head, tail, wc work",
                token=f[0],
            )
    if background and filters:
        raise LabError("a background job cannot have a pipe", token="&")
    display = text + (" &" if background else "")
    return ParsedLine(machine=machine, argv=argvs[0], filters=filters, background=background, display=display)
