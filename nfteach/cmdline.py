"""Parsing one lab command line into something a backend can run without a shell.

A line is ``[@host ][sudo ]CMD ARGS... [| FILTER ...]... [&]``. Quoting follows the
POSIX shell (``\\;`` and quotes work as in bash), but nothing is ever given to a shell:
``;``, ``&&``, redirections and substitutions are refused with a one-line error.
Parsing is one pass over the line (linear time), and a line longer than
:data:`MAX_LINE` bytes is refused before it is looked at.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from .model.errors import LabError

FILTERS = ("grep", "egrep", "fgrep", "head", "tail", "wc")
#: the longest command line the lab reads, in bytes (UTF-8): 64 KiB
MAX_LINE = 64 * 1024
_BLANK = " \t\r\n"
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


def split_words(seg: str) -> List[str]:
    r"""POSIX-shell words of ``seg``, as ``shlex.split(seg)`` gives them, in one pass
    (shlex grows each word a character at a time: quadratic in a word's length).

    >>> split_words(r'nft add rule ip t c counter "drop" \; x\ y ""')
    ['nft', 'add', 'rule', 'ip', 't', 'c', 'counter', 'drop', ';', 'x y', '']
    """
    words: List[str] = []
    cur: List[str] = []
    in_word = False
    i, n = 0, len(seg)
    while i < n:
        c = seg[i]
        if c in _BLANK:
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
            i += 1
            continue
        in_word = True
        if c == "'":
            end = seg.find("'", i + 1)
            if end < 0:
                raise LabError("cannot parse command line: No closing quotation")
            cur.append(seg[i + 1 : end])
            i = end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise LabError("cannot parse command line: No closing quotation")
                c = seg[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and seg[i + 1] in '"\\':
                    cur.append(seg[i + 1])
                    i += 2
                    continue
                cur.append(c)
                i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise LabError("cannot parse command line: No escaped character")
            cur.append(seg[i + 1])
            i += 2
        else:
            cur.append(c)
            i += 1
    if in_word:
        words.append("".join(cur))
    return words


def parse_line(line: str) -> Optional[ParsedLine]:
    """Parse one line; ``None`` for blank lines and ``#`` comments."""
    if len(line) > MAX_LINE // 4 and len(line.encode("utf-8", "surrogatepass")) > MAX_LINE:
        raise LabError(f"command line is {len(line.encode('utf-8', 'surrogatepass'))} bytes long; "
                       f"the lab reads lines of up to {MAX_LINE // 1024} KiB", token=line[:20])
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
        argv = split_words(seg)
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
