"""The part of nft's grammar (src/parser_bison.y) the course uses, with nft's error shape.

nft joins its arguments with spaces and parses the result as one line; errors point at
a span of that line (``Error: ...``, the line, a ``^^^`` caret line), as the real tool.

>>> p = Parser("add rule ip t c tcp dport 2570 counter drop")
>>> cmd = p.commands()[0]
>>> cmd.op, cmd.obj, cmd.table, cmd.chain, [e.kind for e in cmd.exprs]
('add', 'rule', 't', 'c', ['port', 'counter', 'verdict'])
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from ...model.netfilter import NFT_HOOK_WORDS
from ..kernel.nftables import CT_STATE_BITS, Expr, NftError
from ..kernel.xtables import PROTOS, SERVICES, XtError, parse_net

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
HOOKS = {word: hooknum for hooknum, word in enumerate(NFT_HOOK_WORDS)}
STD_PRIOS = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
VERDICTS = ("accept", "drop", "return", "continue")
_TOKEN = re.compile(
    r"(?P<ws>[ \t\n]+)|(?P<addr>\d+\.\d+\.\d+\.\d+)|(?P<num>0x[0-9a-fA-F]+|\d+)"
    r"|(?P<str>[A-Za-z_.][A-Za-z0-9/\-_.]*)|(?P<qstr>\"[^\"]*\")|(?P<punct>[{}();,$!=<>+\-/*@:\[\]&|^])"
)
_KIND_NAME = {"num": "number", "str": "string", "addr": "string", "qstr": "quoted string", "eof": "newline"}


@dataclass
class Tok:
    kind: str  # num str addr qstr punct junk eof
    text: str
    start: int
    end: int

    def describe(self) -> str:
        if self.kind == "punct":
            return {";": "semicolon", "-": "-", "+": "+", "/": "/", ",": "comma"}.get(self.text, f"'{self.text}'")
        return _KIND_NAME.get(self.kind, "junk")


def tokenize(line: str) -> List[Tok]:
    toks, pos = [], 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None:
            toks.append(Tok("junk", line[pos], pos, pos + 1))
            pos += 1
            continue
        kind = m.lastgroup
        if kind != "ws":
            toks.append(Tok(kind, m.group(), pos, m.end()))
        pos = m.end()
    toks.append(Tok("eof", "", len(line), len(line) + 1))
    return toks


@dataclass
class Command:
    op: str  # add create insert delete flush list
    obj: str  # table chain rule ruleset tables chains
    family: str = "ip"
    table: str = ""
    chain: str = ""
    handle: Optional[int] = None
    span: Tuple[int, int] = (0, 0)  # the whole command
    table_span: Tuple[int, int] = (0, 0)
    chain_span: Tuple[int, int] = (0, 0)
    handle_span: Tuple[int, int] = (0, 0)
    base: Optional[dict] = None  # type, type_span, hook, hook_span, prio, prio_span, policy
    exprs: List[Expr] = field(default_factory=list)
    jump_span: Tuple[int, int] = (0, 0)


class Parser:
    def __init__(self, line: str):
        self.line = line
        self.toks = tokenize(line)
        self.i = 0
        self.last_set = False

    # -- helpers ----------------------------------------------------------------------
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def unexpected(self, expecting: str = "") -> NftError:
        t = self.tok
        if t.kind == "punct" and t.text == "$":  # a variable: `$name`
            t = self.toks[self.i + 1]
            if t.kind != "str":
                return NftError(f"syntax error, unexpected {t.describe()}, expecting string",
                                (t.start, t.end if t.kind != "eof" else t.start + 1))
            return NftError("nfteach: nft variables ($name) are not modelled", (t.start, t.end))
        if t.kind == "junk":
            return NftError("syntax error, unexpected junk", (t.start, t.start + 1))
        msg = f"syntax error, unexpected {t.describe()}"
        if expecting:
            msg += f", expecting {expecting}"
        return NftError(msg, (t.start, t.end if t.kind != "eof" else t.start + 1))

    def word(self, expecting: str = "string") -> Tok:
        if self.tok.kind not in ("str", "qstr"):
            raise self.unexpected(expecting)
        t = self.next()
        if t.kind == "qstr":
            t = Tok("str", t.text[1:-1], t.start, t.end)
        return t

    def at_end(self) -> bool:
        return self.tok.kind == "eof" or (self.tok.kind == "punct" and self.tok.text == ";")

    # -- commands ---------------------------------------------------------------------
    def commands(self) -> List[Command]:
        cmds = []
        while True:
            while self.tok.kind == "punct" and self.tok.text == ";":
                self.next()
            if self.tok.kind == "eof":
                return cmds
            cmds.append(self.command())
            if not self.at_end():
                raise self.unexpected("end of file or newline or semicolon")

    def command(self) -> Command:
        start = self.tok.start
        op = "add"
        if self.tok.kind == "str" and self.tok.text in ("add", "create", "insert", "delete", "flush", "list",
                                                        "destroy", "replace", "reset", "monitor", "describe",
                                                        "get", "rename", "import", "export"):
            op = self.next().text
        if op in ("destroy", "replace", "reset", "monitor", "describe", "get", "rename", "import", "export"):
            raise NftError(f"nfteach: `nft {op}' is not modelled; supported: add, create, insert, delete, "
                           "flush, list", None)
        obj = self.tok.text if self.tok.kind == "str" else ""
        known = {"add": ("table", "chain", "rule"), "create": ("table", "chain"), "insert": ("rule",),
                 "delete": ("table", "chain", "rule"), "flush": ("ruleset", "table", "chain"),
                 "list": ("ruleset", "table", "chain", "tables", "chains")}[op]
        if obj in known:
            self.next()
        elif op == "add" and self.tok.kind in ("str", "qstr"):
            obj = "rule"  # `nft add ip t c tcp dport 1 drop` / implicit `add`
        else:
            raise self.unexpected("string" if op == "add" else "")
        cmd = Command(op, obj)
        if obj in ("ruleset", "tables", "chains"):
            if obj == "ruleset" and self.tok.kind == "str" and self.tok.text in FAMILIES:
                cmd.family = self.next().text
            elif obj == "ruleset":
                cmd.family = ""
        else:
            self.table_spec(cmd)
            if obj in ("chain", "rule"):
                t = self.word()
                cmd.chain, cmd.chain_span = t.text, (t.start, t.end)
            if obj == "chain" and op in ("add", "create") and self.tok.text == "{" and self.tok.kind == "punct":
                self.chain_block(cmd)
            elif obj == "rule" and op == "delete":
                if self.tok.text != "handle":
                    raise self.unexpected("handle")
                self.next()
                if self.tok.kind != "num":
                    raise self.unexpected("number")
                t = self.next()
                cmd.handle, cmd.handle_span = int(t.text, 0), (t.start, t.end)
            elif obj == "rule":
                if self.tok.text in ("handle", "position", "index") and self.tok.kind == "str":
                    raise NftError("nfteach: rule positions (handle/position/index) are not modelled",
                                   (self.tok.start, self.tok.end))
                self.rule(cmd)
        # nft's location of a whole command that ends with a `{ ... }` block reaches one
        # column past the `}` (measured on live 6.18, nft 1.0.6, with positive, negative and
        # int32-extreme priorities and with a policy: always the line's length + 1 carets)
        last = self.toks[self.i - 1]
        cmd.span = (start, last.end + (1 if last.text == "}" else 0))
        return cmd

    def table_spec(self, cmd: Command) -> None:
        if self.tok.kind == "str" and self.tok.text in FAMILIES and self.toks[self.i + 1].kind in ("str", "qstr"):
            fam = self.next()
            if fam.text not in ("ip", "ip6", "inet"):
                raise NftError(f"nfteach: nft family `{fam.text}' is not modelled; supported: ip, ip6, inet",
                               (fam.start, fam.end))
            cmd.family = fam.text
        t = self.word()
        cmd.table, cmd.table_span = t.text, (t.start, t.end)

    def chain_block(self, cmd: Command) -> None:
        self.next()  # {
        base: dict = {}
        while not (self.tok.kind == "punct" and self.tok.text == "}"):
            if self.tok.kind == "punct" and self.tok.text == ";":
                self.next()
                continue
            if self.tok.kind == "eof":
                raise self.unexpected("'}'")
            kw = self.word()
            if kw.text == "type":
                t = self.word()
                base.update(type=t.text, type_span=(t.start, t.end), decl_start=kw.start)
                if self.tok.text != "hook":
                    raise self.unexpected("hook")
                self.next()
                h = self.word()
                base.update(hook=h.text, hook_span=(h.start, h.end))
                if self.tok.text != "priority":
                    raise self.unexpected("priority")
                self.priority(base)
            elif kw.text == "policy":
                if self.tok.text not in ("accept", "drop"):
                    raise self.unexpected("accept or drop or '$'")
                base["policy"] = self.next().text
            elif kw.text in ("comment", "device", "flags"):
                raise NftError(f"nfteach: chain `{kw.text}' is not modelled; supported: type, hook, priority, "
                               "policy", (kw.start, kw.end))
            else:
                self.i -= 1
                raise self.unexpected()
            if not (self.tok.kind == "punct" and self.tok.text in (";", "}")) and self.tok.kind != "eof":
                raise self.unexpected("newline or semicolon")
        self.next()  # }
        cmd.base = base or None

    def priority(self, base: dict) -> None:
        start = self.next().start  # 'priority'
        neg = False
        if self.tok.kind == "punct" and self.tok.text == "-":
            self.next()
            neg = True
        t = self.tok
        if t.kind == "num":
            self.next()
            v = int(t.text, 0)
            name = None
            if v >= 2**64:
                raise NftError("invalid priority expression value in this context.", (start, t.end))
            value = -v if neg else v
        elif t.kind == "str" and not neg:
            self.next()
            name, value = t.text, 0
            if self.tok.kind == "punct" and self.tok.text in "+-":
                sign = 1 if self.next().text == "+" else -1
                if self.tok.kind != "num":
                    raise self.unexpected("number")
                value = sign * int(self.next().text, 0)
        else:
            raise self.unexpected("string" if not neg else "number")
        # int_num is a 64-bit number stored in a host-endian int: nft keeps the low 32 bits
        value &= 0xFFFFFFFF
        if value >= 2**31:
            value -= 2**32
        base.update(prio=value, prio_name=name, prio_span=(start, self.toks[self.i - 1].end))

    # -- rules ------------------------------------------------------------------------
    def rule(self, cmd: Command) -> None:
        exprs = cmd.exprs
        while not self.at_end() and not (self.tok.kind == "punct" and self.tok.text == "}"):
            t = self.tok
            if t.kind != "str":
                raise self.unexpected()
            w = self.next().text
            if w in ("tcp", "udp"):
                f = self.tok.text
                if f not in ("dport", "sport"):
                    raise NftError(f"nfteach: `{w} {f}' is not modelled; supported: {w} dport, {w} sport",
                                   (self.tok.start, self.tok.end))
                self.next()
                exprs.append(Expr("port", PROTOS[w], f, self.ports(), is_set=self.last_set))
            elif w == "ip":
                f = self.tok.text
                if f not in ("saddr", "daddr"):
                    raise NftError(f"nfteach: `ip {f}' is not modelled; supported: ip saddr, ip daddr",
                                   (self.tok.start, self.tok.end))
                self.next()
                a = self.tok
                if a.kind not in ("addr", "str", "num"):
                    raise self.unexpected()
                self.next()
                text = a.text
                if self.tok.kind == "punct" and self.tok.text == "/" and self.toks[self.i + 1].kind == "num":
                    self.next()
                    n = self.next()
                    text = f"{text}/{n.text}"
                try:
                    net = parse_net(text)
                except XtError:
                    raise NftError("Could not resolve hostname: Name or service not known", (a.start, a.end)) from None
                exprs.append(Expr("ip", f, net, text))
            elif w == "meta":
                if self.tok.text != "l4proto":
                    raise NftError(f"nfteach: `meta {self.tok.text}' is not modelled; supported: meta l4proto",
                                   (self.tok.start, self.tok.end))
                self.next()
                p = self.next()
                if p.kind == "num" and int(p.text, 0) < 256:
                    exprs.append(Expr("l4proto", int(p.text, 0)))
                elif p.text in PROTOS and p.text != "all":
                    exprs.append(Expr("l4proto", PROTOS[p.text]))
                else:
                    raise NftError("Could not resolve protocol name", (p.start, p.end))
            elif w == "ct":
                if self.tok.text != "state":
                    raise NftError(f"nfteach: `ct {self.tok.text}' is not modelled; supported: ct state",
                                   (self.tok.start, self.tok.end))
                self.next()
                states = frozenset(self.list_of(self.ct_state))
                exprs.append(Expr("ct_state", states, is_set=self.last_set))
            elif w == "counter":
                exprs.append(Expr("counter"))
            elif w == "notrack":
                exprs.append(Expr("notrack"))
            elif w in VERDICTS:
                exprs.append(Expr("verdict", w))
            elif w in ("jump", "goto"):
                c = self.word()
                cmd.jump_span = (c.start, c.end)
                exprs.append(Expr("verdict", w, c.text))
            else:
                if self.at_end():
                    raise self.unexpected()
                raise NftError(f"nfteach: nft expression `{w}' is not modelled; supported: tcp|udp dport|sport, "
                               "ip saddr|daddr, meta l4proto, ct state, counter, notrack, accept, drop, "
                               "return, jump, goto", (t.start, t.end))

    def list_of(self, one) -> list:
        self.last_set = self.tok.kind == "punct" and self.tok.text == "{"
        if self.last_set:
            self.next()
            vals = [one()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.next()
                vals.append(one())
            if not (self.tok.kind == "punct" and self.tok.text == "}"):
                raise self.unexpected("comma or '}'")
            self.next()
            return vals
        vals = [one()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.next()
            vals.append(one())
        return vals

    def ct_state(self) -> str:
        t = self.next()
        if t.text not in CT_STATE_BITS:
            raise NftError("Could not parse conntrack state", (t.start, t.end))
        return t.text

    def ports(self) -> tuple:
        def port() -> int:
            t = self.next()
            if t.kind == "num":
                v = int(t.text, 0)
                if v > 65535:
                    raise NftError("Service out of range", (t.start, t.end))
                return v
            if t.kind == "str":
                if t.text in SERVICES.values():
                    return next(k for k, v in SERVICES.items() if v == t.text)
                raise NftError("Could not resolve service: Servname not supported for ai_socktype",
                               (t.start, t.end))
            self.i -= 1
            raise self.unexpected()

        def one() -> Tuple[int, int]:
            lo = port()
            if self.tok.kind == "punct" and self.tok.text == "-":
                self.next()
                return lo, port()
            return lo, lo

        return tuple(self.list_of(one))
