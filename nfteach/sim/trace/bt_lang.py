"""The bpftrace language subset the simulator runs: lexer and parser (the tree: :mod:`.bt_ast`).

Errors are :class:`BtError` with a source location, printed the way bpftrace 0.17 prints
them (``stdin:1:14-15: ERROR: syntax error, unexpected ;`` + the line + ``~~~``).
The subset is documented in ``docs/bpftrace-subset.md``.

>>> prog = parse("kprobe:ip_rcv { @[comm] = count(); }")
>>> [p.attach for p in prog.probes][0], type(prog.probes[0].body[0]).__name__
(['kprobe:ip_rcv'], 'Assign')
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .bt_ast import (  # noqa: F401 (the tree's classes: L.Binop, ... for the runtime)
    Assign,
    Binop,
    Call,
    Cast,
    ExprStmt,
    Field,
    Ident,
    If,
    Index,
    Int,
    Loc,
    Map,
    Node,
    Probe,
    Program,
    Str,
    Ternary,
    Unop,
    Var,
)


class BtError(Exception):
    def __init__(self, msg: str, loc: Optional[Loc] = None, kind: str = "ERROR"):
        super().__init__(msg)
        self.msg, self.loc, self.kind = msg, loc, kind


def format_diag(filename: str, source: str, loc: Optional[Loc], msg: str, kind: str = "ERROR") -> str:
    """One bpftrace diagnostic, as bpftrace 0.17 prints it."""
    if loc is None:
        return f"{kind}: {msg}\n"
    l1, c1, l2, c2 = loc
    if l1 != l2:
        return f"{filename}:{l1}-{l2}: {kind}: {msg}\n"
    lines = source.split("\n")
    text = lines[l1 - 1] if 0 < l1 <= len(lines) else ""
    return f"{filename}:{l1}:{c1}-{c2}: {kind}: {msg}\n{text}\n{' ' * (c1 - 1)}{'~' * max(c2 - c1, 1)}\n"


# -- lexer -------------------------------------------------------------------------------
_TOKEN = re.compile(r"""
  (?P<ws>[ \t\r\n]+)
| (?P<comment>//[^\n]*|/\*.*?\*/)
| (?P<num>0[xX][0-9a-fA-F]+|\d+)
| (?P<str>"(?:[^"\\\n]|\\.)*")
| (?P<var>\$[A-Za-z_][A-Za-z0-9_]*|\$\d+)
| (?P<map>@[A-Za-z_][A-Za-z0-9_]*|@)
| (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
| (?P<op><<=|>>=|->|\+\+|--|<<|>>|<=|>=|==|!=|&&|\|\||\+=|-=|\*=|/=|%=|&=|\|=|\^=|[-+*/%&|^!~<>=?:;,.(){}\[\]])
""", re.VERBOSE | re.DOTALL)


@dataclass
class Tok:
    kind: str
    text: str
    line: int
    col: int
    eline: int
    ecol: int

    @property
    def loc(self) -> Loc:
        return (self.line, self.col, self.eline, self.ecol)


def _advance(text: str, line: int, col: int) -> Tuple[int, int]:
    nl = text.count("\n")
    if nl:
        return line + nl, len(text) - text.rfind("\n")
    return line, col + len(text)


def strip_comments(src: str) -> str:
    """Comments blanked out (positions kept), as the lexer sees the program."""
    out, i = [], 0
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|/\*.*?\*/', src, re.DOTALL):
        out.append(src[i:m.start()])
        t = m.group(0)
        out.append(t if t.startswith('"') else re.sub(r"[^\n]", " ", t))
        i = m.end()
    out.append(src[i:])
    return "".join(out)


INT_TYPES = {"uint8": (1, False), "uint16": (2, False), "uint32": (4, False), "uint64": (8, False),
             "int8": (1, True), "int16": (2, True), "int32": (4, True), "int64": (8, True),
             "u8": (1, False), "u16": (2, False), "u32": (4, False), "u64": (8, False),
             "s8": (1, True), "s16": (2, True), "s32": (4, True), "s64": (8, True)}
C_TYPE_WORDS = {"struct", "union", "unsigned", "signed", "char", "short", "int", "long", "void", "const", "enum"}


# -- parser ------------------------------------------------------------------------------
class Parser:
    def __init__(self, src: str):
        self.src = src
        self.clean = strip_comments(src)
        self.toks: List[Tok] = []
        self._lex()
        self.i = 0

    def _lex(self) -> None:
        line, col, pos, s = 1, 1, 0, self.clean
        while pos < len(s):
            if s[pos] == "#" and (pos == 0 or s[pos - 1] == "\n"):  # #include / #define: ignored
                end = s.find("\n", pos)
                end = len(s) if end < 0 else end
                line, col = _advance(s[pos:end], line, col)
                pos = end
                continue
            m = _TOKEN.match(s, pos)
            if not m:
                raise BtError(f"invalid character '{s[pos]}'", (line, col, line, col + 1))
            kind, text = m.lastgroup, m.group(0)
            eline, ecol = _advance(text, line, col)
            if kind not in ("ws", "comment"):
                self.toks.append(Tok(kind, text, line, col, eline, ecol))
            line, col, pos = eline, ecol, m.end()
        self.eof = Tok("eof", "", line, col, line, col)

    # token helpers
    def peek(self, k: int = 0) -> Tok:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else self.eof

    def next(self) -> Tok:
        t = self.peek()
        self.i += 1
        return t

    def at(self, text: str) -> bool:
        t = self.peek()
        return t.kind in ("op", "ident") and t.text == text

    def expect(self, text: str) -> Tok:
        t = self.peek()
        if not self.at(text):
            self.unexpected(t, f"expecting {text}")
        return self.next()

    def unexpected(self, t: Tok, expecting: str = ""):
        what = "end of file" if t.kind == "eof" else t.text
        msg = f"syntax error, unexpected {what}"
        if expecting:
            msg += f", {expecting}"
        raise BtError(msg, t.loc)

    @staticmethod
    def span(a: Loc, b: Loc) -> Loc:
        return (a[0], a[1], b[2], b[3])

    # program
    def program(self) -> Program:
        probes = []
        prev_end = (1, 1)
        while self.peek().kind != "eof":
            p = self.probe(prev_end)
            probes.append(p)
            prev_end = (self.toks[self.i - 1].eline, self.toks[self.i - 1].ecol)
        if not probes:
            raise BtError("No probes to attach", None)
        return Program(probes, self.src)

    def probe(self, prev_end) -> Probe:
        attach, locs = [], []
        start = prev_end
        while True:
            t0 = self.peek()
            if t0.kind != "ident":
                self.unexpected(t0)
            parts, last = [], t0
            # an attach point: words, ':' and '*' glued together (kprobe:nf_*, tracepoint:skb:kfree_skb)
            while True:
                t = self.peek()
                if parts and (t.line, t.col) != (last.eline, last.ecol):
                    break
                if t.kind in ("ident", "num") or (t.kind == "op" and t.text in (":", "*", ".")):
                    parts.append(t.text)
                    last = self.next()
                else:
                    break
            attach.append("".join(parts))
            locs.append((start[0], start[1], last.eline, last.ecol))
            if self.at(","):
                c = self.next()
                start = (c.eline, c.ecol)
                continue
            break
        pred = None
        if self.at("/"):
            self.next()
            pred = self.expr(stop_at_slash=True)
            self.expect("/")
        body = self.block()
        return Probe(locs[0], attach, locs, pred, body)

    def block(self) -> List[Node]:
        self.expect("{")
        stmts = []
        while not self.at("}"):
            if self.peek().kind == "eof":
                self.unexpected(self.peek())
            if self.at(";"):
                self.next()
                continue
            stmts.append(self.statement())
            if self.at(";"):
                self.next()
            elif not self.at("}") and not isinstance(stmts[-1], If):
                self.unexpected(self.peek())
        self.next()
        return stmts

    def statement(self) -> Node:
        t = self.peek()
        if t.kind == "ident" and t.text == "if":
            return self.if_stmt()
        if t.kind == "ident" and t.text in ("unroll", "while", "for", "return"):
            raise BtError(f"'{t.text}' is not in the simulator's bpftrace subset (docs/bpftrace-subset.md)", t.loc)
        e = self.expr()
        for op in ("=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="):
            if self.at(op):
                if not isinstance(e, (Var, Map)):
                    self.unexpected(self.peek())
                self.next()
                v = self.expr()
                return Assign(self.span(e.loc, v.loc), e, op, v)
        if self.at("++") or self.at("--"):
            op = self.next()
            if not isinstance(e, (Var, Map)):
                self.unexpected(op)
            return Assign(self.span(e.loc, op.loc), e, op.text[0] + "=", Int(op.loc, 1))
        return ExprStmt(e.loc, e)

    def if_stmt(self) -> If:
        t = self.next()
        self.expect("(")
        cond = self.expr()
        self.expect(")")
        then = self.block()
        orelse: List[Node] = []
        if self.at("else"):
            self.next()
            orelse = [self.if_stmt()] if self.at("if") else self.block()
        return If(t.loc, cond, then, orelse)

    # expressions: precedence climbing, C precedence
    BINARY = [
        ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="),
        ("<<", ">>"), ("+", "-"), ("*", "/", "%"),
    ]

    def expr(self, stop_at_slash: bool = False) -> Node:
        self._slash_stop = stop_at_slash
        c = self.binary(0)
        if self.at("?"):
            self.next()
            a = self.expr(stop_at_slash)
            self.expect(":")
            b = self.expr(stop_at_slash)
            return Ternary(self.span(c.loc, b.loc), c, a, b)
        return c

    def binary(self, level: int) -> Node:
        if level == len(self.BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            t = self.peek()
            if t.kind == "op" and t.text in self.BINARY[level]:
                if t.text == "/" and self._slash_stop:
                    return left
                self.next()
                right = self.binary(level + 1)
                left = Binop(self.span(left.loc, right.loc), t.text, left, right)
            else:
                return left

    def _is_cast(self) -> bool:
        t1 = self.peek(1)
        if t1.kind != "ident":
            return False
        if t1.text in C_TYPE_WORDS:
            return True
        if t1.text in INT_TYPES:
            t2 = self.peek(2)
            return t2.kind == "op" and t2.text in (")", "*")
        return False

    def unary(self) -> Node:
        t = self.peek()
        if t.kind == "op" and t.text in ("!", "~", "-", "*", "&"):
            self.next()
            e = self.unary()
            return Unop(self.span(t.loc, e.loc), t.text, e)
        if t.kind == "op" and t.text == "(" and self._is_cast():
            self.next()
            words = []
            while not self.at(")"):
                w = self.next()
                if w.kind == "eof":
                    self.unexpected(w)
                words.append(w.text)
            self.next()
            ctype = re.sub(r"\s*\*", " *", " ".join(words)).replace("* *", "**")
            e = self.unary()
            return Cast(self.span(t.loc, e.loc), ctype, e)
        return self.postfix(self.primary())

    def postfix(self, e: Node) -> Node:
        while True:
            if self.at("->") or self.at("."):
                op = self.next()
                n = self.next()
                if n.kind != "ident":
                    self.unexpected(n)
                e = Field(self.span(e.loc, n.loc), e, n.text, op.text == "->")
            elif self.at("[") and not isinstance(e, Map):
                self.next()
                ix = self.expr()
                end = self.expect("]")
                e = Index(self.span(e.loc, end.loc), e, ix)
            else:
                return e

    def primary(self) -> Node:
        t = self.next()
        if t.kind == "num":
            return Int(t.loc, int(t.text, 0))
        if t.kind == "str":
            return Str(t.loc, _unescape(t.text[1:-1]))
        if t.kind == "var":
            return Var(t.loc, t.text)
        if t.kind == "map":
            keys: List[Node] = []
            loc = t.loc
            if self.at("["):
                self.next()
                while True:
                    keys.append(self.expr())
                    if self.at(","):
                        self.next()
                        continue
                    break
                end = self.expect("]")
                loc = self.span(t.loc, end.loc)
            return Map(loc, t.text, keys)
        if t.kind == "ident":
            if self.at("("):
                self.next()
                args: List[Node] = []
                if not self.at(")"):
                    while True:
                        args.append(self.expr())
                        if self.at(","):
                            self.next()
                            continue
                        break
                end = self.expect(")")
                return Call(self.span(t.loc, end.loc), t.text, args)
            return Ident(t.loc, t.text)
        if t.kind == "op" and t.text == "(":
            saved = self._slash_stop
            e = self.expr()
            self._slash_stop = saved
            self.expect(")")
            return e
        self.unexpected(t)


def _unescape(s: str) -> str:
    out, i = [], 0
    esc = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "r": "\r", "0": "\0"}
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append(esc.get(s[i + 1], "\\" + s[i + 1]))
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse(src: str) -> Program:
    return Parser(src).program()
