"""``grep``, ``head``, ``tail`` and ``wc`` for pipes, in Python, the same on every backend.

``grep`` matches with RE2 (``google-re2``), a linear-time engine with POSIX
leftmost-longest matching like GNU grep's: ``grep -E '(.|.)*XYZ'`` answers at once where
a backtracking engine would take exponential time. Where RE2 cannot be installed (the
browser, Pyodide) Python's ``re`` is used.
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from .model.errors import LabError

try:
    import re2 as _re2
except ImportError:  # pragma: no cover - Pyodide has no RE2 wheel
    _re2 = None


class _Matcher:
    """One grep pattern: ``finditer(line)`` yields the matched substrings (``-w``: whole words only)."""

    def __init__(self, rx: str, ignore: bool, word: bool, shown: str):
        self.word = word
        if word:
            # the match must sit between non-word characters (or the line's ends), as GNU grep -w
            rx = r"(?:^|[^\w])(" + rx + r")(?:[^\w]|$)"
        try:
            if _re2 is not None:
                opts = _re2.Options()
                opts.log_errors = False
                opts.longest_match = True
                opts.case_sensitive = not ignore
                self.rx = _re2.compile(rx, opts)
            else:
                self.rx = re.compile(rx, re.IGNORECASE if ignore else 0)
        except Exception as e:  # re.error / re2.error: a one-line refusal
            why = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
            raise LabError(f"grep: invalid pattern {shown!r}: {why}", token=shown) from None

    def finditer(self, body: str):
        pos = 0
        while pos <= len(body):
            m = self.rx.search(body, pos)
            if m is None:
                return
            start, end = (m.start(1), m.end(1)) if self.word else (m.start(), m.end())
            yield body[start:end]
            pos = end if end > start else end + 1


def _search(regs: List[_Matcher], body: str) -> Optional[list]:
    return [t for r in regs for t in r.finditer(body)]


def _bre_to_python(pat: str) -> str:
    """GNU basic regular expression -> Python regex (\\| \\( \\) \\+ \\? \\{ \\} are the operators)."""
    out, i = [], 0
    while i < len(pat):
        c = pat[i]
        if c == "\\" and i + 1 < len(pat):
            nxt = pat[i + 1]
            if nxt in "|(){}+?":
                out.append(nxt)
            else:
                out.append("\\" + nxt)
            i += 2
            continue
        if c in "|(){}+?":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def grep(argv: List[str], text: str) -> Tuple[str, int]:
    invert = count = ignore = word = quiet = only = False
    mode = "basic" if argv[0] == "grep" else ("extended" if argv[0] == "egrep" else "fixed")
    patterns: List[str] = []
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-e":
            if i + 1 >= len(args):
                raise LabError("grep: option requires an argument -- 'e'", token="-e")
            patterns.append(args[i + 1])
            i += 2
            continue
        if a.startswith("-") and len(a) > 1 and not patterns and a != "--":
            for ch in a[1:]:
                if ch == "v":
                    invert = True
                elif ch == "c":
                    count = True
                elif ch == "i":
                    ignore = True
                elif ch == "w":
                    word = True
                elif ch == "q":
                    quiet = True
                elif ch == "o":
                    only = True
                elif ch == "E":
                    mode = "extended"
                elif ch == "F":
                    mode = "fixed"
                else:
                    raise LabError(f"grep: option -{ch} is not supported in lab pipes (supported: -v -c -i -w -q -o -E -F -e)", token=a)
            i += 1
            continue
        if a == "--":
            i += 1
        if i < len(args):
            if not patterns:
                patterns.append(args[i])
            else:
                raise LabError("grep: reading files is not supported in lab pipes", token=args[i])
        i += 1
    if not patterns:
        raise LabError("grep: no pattern given", token="grep")
    regs = []
    for p in patterns:
        if mode == "fixed":
            rx = re.escape(p)
        elif mode == "basic":
            rx = _bre_to_python(p)
        else:
            rx = p
        regs.append(_Matcher(rx, ignore, word, p))
    lines = text.splitlines(keepends=True)
    hits = []
    for line in lines:
        body = line.rstrip("\n")
        found = _search(regs, body)
        matched = bool(found)
        if matched != invert:
            if only and not invert:
                hits.extend(t + "\n" for t in found if t)
            else:
                hits.append(line if line.endswith("\n") else line + "\n")
    status = 0 if hits else 1
    if quiet:
        return "", status
    if count:
        return f"{len(hits)}\n", status
    return "".join(hits), status


def _count_arg(argv: List[str], default: int = 10) -> int:
    args = argv[1:]
    n = default
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-n" and i + 1 < len(args):
            val = args[i + 1]
            i += 2
        elif a.startswith("-n"):
            val = a[2:]
            i += 1
        elif a.startswith("-") and a[1:].isdigit():
            val = a[1:]
            i += 1
        else:
            raise LabError(f"{argv[0]}: unsupported argument {a!r} in lab pipes (supported: -n N, -N)", token=a)
        try:
            n = int(val.lstrip("+"))
        except ValueError:
            raise LabError(f"{argv[0]}: invalid number of lines: {val!r}", token=val) from None
        if n < 0:
            raise LabError(f"{argv[0]}: invalid number of lines: {val!r}", token=val)
    return n


def head(argv: List[str], text: str) -> Tuple[str, int]:
    n = _count_arg(argv)
    return "".join(text.splitlines(keepends=True)[:n]), 0


def tail(argv: List[str], text: str) -> Tuple[str, int]:
    n = _count_arg(argv)
    lines = text.splitlines(keepends=True)
    return "".join(lines[-n:] if n else []), 0


def wc(argv: List[str], text: str) -> Tuple[str, int]:
    flags = set()
    for a in argv[1:]:
        if not a.startswith("-") or len(a) < 2 or set(a[1:]) - set("lwc"):
            raise LabError(f"wc: unsupported argument {a!r} in lab pipes (supported: -l -w -c)", token=a)
        flags |= set(a[1:])
    counts = {"l": text.count("\n"), "w": len(text.split()), "c": len(text.encode())}
    order = [k for k in "lwc" if k in flags] or ["l", "w", "c"]
    if len(order) == 1:
        return f"{counts[order[0]]}\n", 0
    return " ".join(f"{counts[k]:7d}" for k in order) + "\n", 0


def apply(filter_argv: List[str], text: str) -> Tuple[str, int]:
    name = filter_argv[0]
    if name in ("grep", "egrep", "fgrep"):
        return grep(filter_argv, text)
    return {"head": head, "tail": tail, "wc": wc}[name](filter_argv, text)
