"""Graphviz pictures of hook chains (and the shared style of every nfteach picture).

Takes results (``nfteach.observe``), never backends. Node ids are fixed (``h_LOCAL_IN_2``),
nothing depends on time, so the same lab state always gives the same DOT and SVG.

>>> from nfteach.observe import Callback, HookChain
>>> chain = HookChain("vm", "ipv4", "5.10", "sim", (("LOCAL_IN", (
...     Callback("LOCAL_IN", 2147483647, "ipv4_confirm", "conntrack"),
...     Callback("LOCAL_IN", 2147483647, "nft_do_chain_ipv4", "nft ip my_table my_input"))),))
>>> 'h_LOCAL_IN_0 -> h_LOCAL_IN_1' in hooks_graph(chain).source
True
"""
from __future__ import annotations

import html
import re
import sys
from typing import Dict, List, Optional, Sequence, Set, Tuple

import graphviz

INT_MAX, INT_MIN = 2**31 - 1, -(2**31)
FONT = "DejaVu Sans,Helvetica,Arial,sans-serif"  # the same metrics in dot and in the browser
MONO = "DejaVu Sans Mono,Menlo,Consolas,monospace"

# enum nf_ip_hook_priorities (include/uapi/linux/netfilter_ipv4.h)
NAMED_PRIORITIES: Dict[int, str] = {
    INT_MIN: "FIRST", -400: "CONNTRACK_DEFRAG", -300: "RAW", -225: "SELINUX_FIRST",
    -200: "CONNTRACK", -150: "MANGLE", -100: "NAT_DST", 0: "FILTER", 50: "SECURITY",
    100: "NAT_SRC", 225: "SELINUX_LAST", 300: "CONNTRACK_HELPER", INT_MAX: "CONNTRACK_CONFIRM",
}

# (fill, border, legend text) per owner kind
COLORS: Dict[str, Tuple[str, str, str]] = {
    "conntrack": ("#dbeafe", "#1d4ed8", "conntrack (its own callbacks: double border)"),
    "nat": ("#e0e7ff", "#4338ca", "NAT core"),
    "iptables": ("#ffedd5", "#c2410c", "iptables table"),
    "nft": ("#dcfce7", "#15803d", "nft chain"),
    "lsm": ("#f3e8ff", "#7e22ce", "LSM (SELinux, AppArmor)"),
    "other": ("#f3f4f6", "#4b5563", "other"),
}

# what runs after each hook (the okfn) and which kernel function runs the hook
HOOK_CONTEXT: Dict[str, Tuple[str, str]] = {
    "INGRESS": ("__netif_receive_skb_core", "→ ip_rcv"),
    "PRE_ROUTING": ("ip_rcv", "→ routing decision"),
    "LOCAL_IN": ("ip_local_deliver", "→ socket\n(tcp_v4_rcv)"),
    "FORWARD": ("ip_forward", "→ ip_forward_finish"),
    "LOCAL_OUT": ("__ip_local_out", "→ routing,\ndst_output"),
    "POST_ROUTING": ("ip_output", "→ the wire (veth)"),
}


def esc(s) -> str:
    return html.escape(str(s), quote=True)


def prio_text(p: int) -> str:
    if p == INT_MAX:
        return "INT_MAX"
    if p == INT_MIN:
        return "INT_MIN"
    return str(p)


_EDGE_SPACE = re.compile(r"(?<=>) | (?=<)")


def keep_spaces(label):
    """A space next to a tag of an HTML-like label becomes a no-break space: SVG drops a
    leading or trailing space of a text run, and "<b>host</b> sends" would read "hostsends"."""
    if isinstance(label, str) and label.startswith("<") and label.endswith(">"):
        return _EDGE_SPACE.sub("&#160;", label)
    return label


class Graph(graphviz.Digraph):
    """``graphviz.Digraph`` whose HTML-like labels keep their spaces (subgraphs too)."""

    def node(self, name, label=None, _attributes=None, **attrs):
        super().node(name, keep_spaces(label), _attributes=_attributes, **attrs)

    def edge(self, tail_name, head_name, label=None, _attributes=None, **attrs):
        super().edge(tail_name, head_name, keep_spaces(label), _attributes=_attributes, **attrs)

    def attr(self, kw=None, _attributes=None, **attrs):
        if "label" in attrs:
            attrs["label"] = keep_spaces(attrs["label"])
        super().attr(kw, _attributes=_attributes, **attrs)


def new_graph(name: str, rankdir: str = "LR", label: str = "") -> graphviz.Digraph:
    g = Graph(name, format="svg")
    g.attr("graph", rankdir=rankdir, newrank="true", fontname=FONT, fontsize="12", nodesep="0.18",
           ranksep="0.35", bgcolor="white", pad="0.25", labelloc="t", labeljust="l")
    if label:
        g.attr("graph", label=f"<<b>{esc(label)}</b>>", fontsize="16")
    g.attr("node", fontname=FONT, fontsize="10", shape="box", style="rounded,filled", margin="0.06,0.04")
    g.attr("edge", fontname=FONT, fontsize="9", color="#6b7280", arrowsize="0.7")
    return g


def to_svg(g: graphviz.Digraph) -> str:
    """The picture as SVG text (needs Graphviz's ``dot``: Debian package ``graphviz``)."""
    if sys.platform == "emscripten":  # a browser tab (JupyterLite): Graphviz in WebAssembly
        from .wasm import to_svg as wasm_svg
        return wasm_svg(g.source)
    try:
        return g.pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound as e:  # pragma: no cover - depends on the machine
        raise RuntimeError("Graphviz's `dot` is not installed (Debian: apt-get install graphviz)") from e


def callback_label(function: str, priority: int, owner_label: str, extra: str = "",
                   strike: bool = False, mark: str = "") -> str:
    fn = f"<b>{esc(function)}</b>"
    if strike:
        fn = f"<s>{fn}</s>"
    lines = [f"{esc(mark)}{fn}",
             f'<font point-size="9" color="#374151">{esc(prio_text(priority))} · {esc(owner_label)}</font>']
    if extra:
        lines.append(extra)
    return "<" + "<br/>".join(lines) + ">"


def style_for(kind: str, faded: bool = False) -> Dict[str, str]:
    fill, border, _ = COLORS.get(kind, COLORS["other"])
    st = {"fillcolor": fill, "color": border, "penwidth": "1.4"}
    if kind == "conntrack":
        st["peripheries"] = "2"
    if faded:
        st.update(fillcolor="#f9fafb", color="#d1d5db", fontcolor="#9ca3af", style="rounded,filled,dashed")
    return st


def add_legend(g: graphviz.Digraph, kinds: Sequence[str], prefix: str = "", extra: Sequence[Tuple[str, str, str]] = (),
               below: Optional[str] = None) -> None:
    """A small key: one swatch per owner kind used (and ``extra`` (id, label, fill) items).
    ``below``: a node of the bottom row; the key is then one row under the picture (it
    adds no width)."""
    items = [(COLORS[k][0], COLORS[k][1], COLORS[k][2]) for k in COLORS if k in kinds]
    items += [(fill, "#6b7280", text) for _, text, fill in extra]
    if below is not None:
        cells = "".join(f'<td bgcolor="{fill}" color="{border}" border="1" style="rounded">'
                        f'<font point-size="8">{esc(text)}</font></td>' for fill, border, text in items)
        g.node(f"{prefix}legend", f'<<table border="0" cellspacing="6" cellpadding="3"><tr>'
                                  f'<td><font point-size="9"><b>key</b></font></td>{cells}</tr></table>>',
               shape="plaintext", style="")
        g.edge(below, f"{prefix}legend", style="invis")
        return
    with g.subgraph(name=f"cluster_{prefix}legend") as lg:
        # one rank: a row in a top-to-bottom picture, a column in a left-to-right one
        lg.attr(label="<<b>key</b>>", style="rounded,dashed", color="#9ca3af", fontsize="10", rank="same")
        for kind in [k for k in COLORS if k in kinds]:
            fill, border, text = COLORS[kind]
            lg.node(f"{prefix}legend_{kind}", esc(text), fillcolor=fill, color=border, fontsize="9",
                    peripheries="2" if kind == "conntrack" else "1")
        for nid, text, fill in extra:
            lg.node(prefix + nid, esc(text), fillcolor=fill, color="#6b7280", fontsize="9")


# -- the hook chain ---------------------------------------------------------------------
def _slots(lanes) -> List[Tuple[int, int]]:
    """Grid columns: one per (priority, n-th callback at that priority)."""
    need: Dict[int, int] = {}
    for _, cbs in lanes:
        count: Dict[int, int] = {}
        for c in cbs:
            count[c.priority] = count.get(c.priority, 0) + 1
        for p, n in count.items():
            need[p] = max(need.get(p, 0), n)
    return [(p, j) for p in sorted(need) for j in range(need[p])]


def mark_of(changed, function: str) -> str:
    """The mark of a function only one kernel has: ``≠`` renamed (the other kernel has a
    different function in its place), ``+`` only in this kernel (nothing in its place)."""
    if not changed or function not in changed:
        return ""
    how = changed[function] if isinstance(changed, dict) else "renamed"
    return "≠ " if how == "renamed" else "+ "


def hooks_graph(chain, g: Optional[graphviz.Digraph] = None, prefix: str = "",
                changed=None, title: Optional[str] = None, highlight: Sequence[str] = ()) -> graphviz.Digraph:
    """One column per hook (in packet order, left to right), its callbacks top to bottom in
    run order, on a grid whose rows are priorities: the picture grows downwards, not
    sideways, and fits a notebook's column. Colour = owner, double border = conntrack.
    ``changed``: function names to mark (see :func:`mark_of`); ``highlight``: functions
    (``"name"`` or ``"HOOK:name"``) drawn with a thick amber border: the point of a lesson."""
    own = g is None
    if own:
        title = title if title is not None else (
            f"Netfilter hooks of {chain.machine} ({chain.family}, kernel {chain.kernel}, backend {chain.backend})")
        g = new_graph("hooks", rankdir="TB", label=title)
    p = prefix
    lanes = [(h, cbs) for h, cbs in chain.lanes]
    slots = _slots(lanes)
    cols = [f"{p}col_{i}" for i in range(len(slots))]
    kinds: List[str] = []
    # header column first, then one column per hook; rank=same rows line up priorities
    g.node(f"{p}col_head", "<<b>priority</b>>", shape="plaintext", style="", fontsize="10")
    for cid, (prio, j) in zip(cols, slots):
        name = NAMED_PRIORITIES.get(prio, "")
        txt = f"<b>{esc(prio_text(prio))}</b>" if j == 0 else f"<b>{esc(prio_text(prio))}</b><br/><i>(next)</i>"
        if j == 0 and prio in (INT_MAX, INT_MIN):
            txt += f'<br/><font point-size="7">{prio}</font>'
        if j == 0 and name:
            txt += f'<br/><font point-size="7" color="#6b7280">{esc(name)}</font>'
        g.node(cid, f"<{txt}>", shape="plaintext", style="", fontsize="10")
    g.node(f"{p}col_tail", "<<b>afterwards</b>>", shape="plaintext", style="", fontsize="10")
    header = [f"{p}col_head", *cols, f"{p}col_tail"]
    for a, b in zip(header, header[1:]):
        g.edge(a, b, style="invis", weight="10")
    rows: List[List[str]] = [header]
    # dot lays out the flat (same-rank) edges of a nested picture right to left: declare
    # the hooks the other way round there, so both read PRE_ROUTING … POST_ROUTING
    for hook, cbs in (lanes if own else lanes[::-1]):
        hid = f"{p}h_{hook}"
        row = [f"{hid}_lane"]
        with g.subgraph(name=f"cluster_{hid}") as lane:
            lane.attr(label="", style="rounded,filled", fillcolor="#fafafa", color="#d1d5db", margin="6")
            fn, _ = HOOK_CONTEXT.get(hook, ("", ""))
            lane.node(row[0], f'<<b>{esc(hook)}</b><br/><font point-size="8" color="#6b7280">{esc(fn)}</font>>',
                      shape="plaintext", style="", fontsize="12")
            placed = {}
            seen: Dict[int, int] = {}
            for i, c in enumerate(cbs):
                j = seen.get(c.priority, 0)
                seen[c.priority] = j + 1
                placed[slots.index((c.priority, j))] = (i, c)
            visible = [row[0]]
            for col in range(len(slots)):
                if col in placed:
                    i, c = placed[col]
                    nid = f"{hid}_{i}"
                    kinds.append(c.kind)
                    mark = mark_of(changed, c.function)
                    st = style_for(c.kind)
                    if mark:
                        st.update(fontcolor="#b91c1c")
                    if c.function in highlight or f"{hook}:{c.function}" in highlight:
                        st.update(color="#f59e0b", penwidth="3.5")
                    lane.node(nid, callback_label(c.function, c.priority, c.label, mark=mark), **st)
                    visible.append(nid)
                else:
                    nid = f"{hid}_gap{col}"
                    lane.node(nid, "", style="invis", width="0.2", height="0.2")
                row.append(nid)
            _, after = HOOK_CONTEXT.get(hook, ("", ""))
            if not cbs:
                after = f"(no callbacks)\n{after}"
            tail = f"{hid}_okfn"
            after_html = "<br/>".join(esc(x) for x in after.split("\n"))
            lane.node(tail, f'<<font point-size="9" color="#374151">{after_html}</font>>', shape="plaintext", style="")
            row.append(tail)
            visible.append(tail)
        for a, b in zip(row, row[1:]):
            g.edge(a, b, style="invis", weight="10")
        for a, b in zip(visible, visible[1:]):
            g.edge(a, b, constraint="false", color="#374151")
        rows.append(row)
    # one grid row per priority slot; flat invisible edges keep the hooks in packet order
    for c in range(len(header)):
        with g.subgraph() as s:
            s.attr(rank="same")
            for r in rows:
                s.node(r[c])
        for r1, r2 in zip(rows, rows[1:]):
            g.edge(r1[c], r2[c], style="invis")
    if own:
        middle = rows[(len(rows) + 1) // 2][-1] if len(rows) > 1 else f"{p}col_tail"
        add_legend(g, kinds or ["conntrack"], prefix=p, below=middle)
    return g


def function_names(chain) -> Set[str]:
    return {c.function for c in chain.all()}


def differences(mine, other) -> Dict[str, str]:
    """Functions of ``mine`` that ``other`` lacks: "renamed" where ``other`` has another
    function of the same owner in that place (hook, priority), else "only here"."""
    theirs = {c.function for c in other.all()}
    places = {(c.hook, c.priority, c.kind) for c in other.all() if c.function not in {x.function for x in mine.all()}}
    return {c.function: "renamed" if (c.hook, c.priority, c.kind) in places else "only here"
            for c in mine.all() if c.function not in theirs}


def compare_graph(left, right, build, names) -> graphviz.Digraph:
    """Two results, one above the other (``build(result, g, prefix, changed)`` draws one);
    names that only one side has are marked: ≠ renamed, + only in that kernel."""
    grid = getattr(left, "lanes", None) is not None
    if grid:
        lc, rc = differences(left, right), differences(right, left)
        key = "≠ renamed in the other kernel · + only in this kernel"
    else:
        ln, rn = names(left), names(right)
        lc, rc = ln - rn, rn - ln
        key = "≠ named differently"
    g = new_graph("compare", rankdir="TB", label=f"Kernel {left.kernel} above kernel {right.kernel} ({key})")
    kinds: List[str] = []
    for res, pfx, changed in ((left, "a_", lc), (right, "b_", rc)):
        with g.subgraph(name=f"cluster_{pfx}side") as side:
            side.attr(label=f"<<b>kernel {esc(res.kernel)}</b>>", style="rounded", color="#9ca3af", fontsize="14")
            build(res, side, pfx, changed)
        if grid:
            kinds.extend(c.kind for c in res.all())
        else:
            kinds.extend(e.kind_of_owner for p in res.packets for e in p.steps)
    if grid:  # the second kernel below the first, not beside it; the key below both
        g.edge("a_col_tail", "b_col_head", style="invis", weight="5")
    add_legend(g, kinds or ["conntrack"], prefix="k_", below=f"b_h_{right.lanes[len(right.lanes) // 2][0]}_okfn" if grid and right.lanes else None)
    return g
