"""The bpftrace subset's syntax tree: one small dataclass per construct (made by
:mod:`.bt_lang`'s parser, run by :mod:`.bt_run`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

Loc = Tuple[int, int, int, int]  # line1, col1, line2, col2 (col2 exclusive, 1-based)


# -- AST ---------------------------------------------------------------------------------
@dataclass
class Node:
    loc: Loc = field(default=(1, 1, 1, 1), repr=False, compare=False)


@dataclass
class Int(Node):
    value: int = 0


@dataclass
class Str(Node):
    value: str = ""


@dataclass
class Var(Node):
    name: str = ""


@dataclass
class Map(Node):
    name: str = ""
    keys: List[Node] = field(default_factory=list)


@dataclass
class Ident(Node):
    name: str = ""


@dataclass
class Call(Node):
    name: str = ""
    args: List[Node] = field(default_factory=list)


@dataclass
class Binop(Node):
    op: str = ""
    left: Node = None
    right: Node = None


@dataclass
class Unop(Node):
    op: str = ""
    expr: Node = None


@dataclass
class Ternary(Node):
    cond: Node = None
    a: Node = None
    b: Node = None


@dataclass
class Cast(Node):
    ctype: str = ""  # "struct sk_buff *", "uint16", ...
    expr: Node = None


@dataclass
class Field(Node):
    expr: Node = None
    name: str = ""
    arrow: bool = True


@dataclass
class Index(Node):
    expr: Node = None
    index: Node = None


@dataclass
class Assign(Node):
    target: Node = None
    op: str = "="
    value: Node = None


@dataclass
class ExprStmt(Node):
    expr: Node = None


@dataclass
class If(Node):
    cond: Node = None
    then: List[Node] = field(default_factory=list)
    orelse: List[Node] = field(default_factory=list)


@dataclass
class Probe(Node):
    attach: List[str] = field(default_factory=list)
    attach_locs: List[Loc] = field(default_factory=list)
    pred: Optional[Node] = None
    body: List[Node] = field(default_factory=list)


@dataclass
class Program:
    probes: List[Probe]
    source: str
