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
    "LOCAL_IN": ("ip_local_deliver", "→ socket (tcp_v4_rcv)"),
    "FORWARD": ("ip_forward", "→ ip_forward_finish"),
    "LOCAL_OUT": ("__ip_local_out", "→ routing, dst_output"),
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


def new_graph(name: str, rankdir: str = "LR", label: str = "") -> graphviz.Digraph:
    g = graphviz.Digraph(name, format="svg")
    g.attr("graph", rankdir=rankdir, newrank="true", fontname=FONT, fontsize="12", nodesep="0.18",
           ranksep="0.35", bgcolor="white", pad="0.25", labelloc="t", labeljust="l")
    if label:
        g.attr("graph", label=f"<<b>{esc(label)}</b>>", fontsize="16")
    g.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled", margin="0.10,0.05")
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


def add_legend(g: graphviz.Digraph, kinds: Sequence[str], prefix: str = "", extra: Sequence[Tuple[str, str, str]] = ()) -> None:
    """A small key: one swatch per owner kind used (and ``extra`` (id, label, fill) items)."""
    with g.subgraph(name=f"cluster_{prefix}legend") as lg:
        lg.attr(label="<<b>key</b>>", style="rounded,dashed", color="#9ca3af", fontsize="10")
        prev = None
        for kind in [k for k in COLORS if k in kinds]:
            fill, border, text = COLORS[kind]
            nid = f"{prefix}legend_{kind}"
            lg.node(nid, esc(text), fillcolor=fill, color=border, fontsize="9",
                    peripheries="2" if kind == "conntrack" else "1")
            if prev:
                lg.edge(prev, nid, style="invis")
            prev = nid
        for nid, text, fill in extra:
            lg.node(prefix + nid, esc(text), fillcolor=fill, color="#6b7280", fontsize="9")
            if prev:
                lg.edge(prev, prefix + nid, style="invis")
            prev = prefix + nid


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


def hooks_graph(chain, g: Optional[graphviz.Digraph] = None, prefix: str = "",
                changed: Optional[Set[str]] = None, title: Optional[str] = None) -> graphviz.Digraph:
    """Lanes (one cluster per hook) of callbacks in run order, on a grid whose columns are
    priorities; colour = owner, double border = conntrack. ``changed``: function names to
    mark (a side-by-side shows what the other kernel calls differently)."""
    own = g is None
    if own:
        title = title if title is not None else (
            f"Netfilter hooks of {chain.machine} ({chain.family}, kernel {chain.kernel}, backend {chain.backend})")
        g = new_graph("hooks", label=title)
    p = prefix
    lanes = [(h, cbs) for h, cbs in chain.lanes]
    slots = _slots(lanes)
    cols = [f"{p}col_{i}" for i in range(len(slots))]
    kinds: List[str] = []
    rows: List[List[str]] = []
    # Graphviz stacks LR rows bottom-up in the order they are declared: declare the
    # last hook first and the header row last, so the picture reads top-down
    for hook, cbs in reversed(lanes):
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
                    mark = "≠ " if changed and c.function in changed else ""
                    st = style_for(c.kind)
                    if mark:
                        st.update(fontcolor="#b91c1c")
                    lane.node(nid, callback_label(c.function, c.priority, c.label, mark=mark), **st)
                    visible.append(nid)
                else:
                    nid = f"{hid}_gap{col}"
                    lane.node(nid, "", style="invis", width="0.2", height="0.2")
                row.append(nid)
            _, after = HOOK_CONTEXT.get(hook, ("", ""))
            if not cbs:
                after = f"(no callbacks: straight through) {after}"
            tail = f"{hid}_okfn"
            lane.node(tail, f'<<font point-size="9" color="#374151">{esc(after)}</font>>', shape="plaintext", style="")
            row.append(tail)
            visible.append(tail)
        for a, b in zip(row, row[1:]):
            g.edge(a, b, style="invis", weight="10")
        for a, b in zip(visible, visible[1:]):
            g.edge(a, b, constraint="false", color="#374151")
        rows.append(row)
    # header row: one label per column, and one for the lane names / the okfn
    g.node(f"{p}col_head", "<<b>hook</b>>", shape="plaintext", style="", fontsize="10")
    for cid, (prio, j) in zip(cols, slots):
        name = NAMED_PRIORITIES.get(prio, "")
        txt = f"<b>{esc(prio_text(prio))}</b>" if j == 0 else f"<b>{esc(prio_text(prio))}</b><br/><i>(next)</i>"
        if j == 0 and prio in (INT_MAX, INT_MIN):
            txt += f'<br/><font point-size="8">{prio}</font>'
        if j == 0 and name:
            txt += f'<br/><font point-size="8" color="#6b7280">{esc(name)}</font>'
        g.node(cid, f"<{txt}>", shape="plaintext", style="", fontsize="10")
    g.node(f"{p}col_tail", "<<b>afterwards</b>>", shape="plaintext", style="", fontsize="10")
    header = [f"{p}col_head", *cols, f"{p}col_tail"]
    for a, b in zip(header, header[1:]):
        g.edge(a, b, style="invis", weight="10")
    rows.append(header)
    # one column per grid column; flat invisible edges keep the lanes in hook order
    for c in range(len(header)):
        with g.subgraph() as s:
            s.attr(rank="same")
            for r in rows:
                s.node(r[c])
        for r1, r2 in zip(rows, rows[1:]):
            g.edge(r1[c], r2[c], style="invis")
    if own:
        add_legend(g, kinds or ["conntrack"], prefix=p)
    return g


def function_names(chain) -> Set[str]:
    return {c.function for c in chain.all()}


def compare_graph(left, right, build, names) -> graphviz.Digraph:
    """Two results side by side (``build(result, g, prefix, changed)`` draws one); names
    that only one side has are marked ≠ in red."""
    ln, rn = names(left), names(right)
    grid = getattr(left, "lanes", None) is not None
    g = new_graph("compare", rankdir="LR" if grid else "TB",
                  label=f"Kernel {left.kernel} and kernel {right.kernel}, side by side (≠: named differently)")
    kinds: List[str] = []
    sides = ((left, "a_", ln - rn), (right, "b_", rn - ln))
    if grid:
        sides = sides[::-1]  # hook grids are LR: rows stack bottom-up in declaration order
    for res, pfx, changed in sides:
        with g.subgraph(name=f"cluster_{pfx}side") as side:
            side.attr(label=f"<<b>kernel {esc(res.kernel)}</b>>", style="rounded", color="#9ca3af", fontsize="14")
            build(res, side, pfx, changed)
        if grid:
            kinds.extend(c.kind for c in res.all())
        else:
            kinds.extend(e.kind_of_owner for p in res.packets for e in p.steps)
    add_legend(g, kinds or ["conntrack"], prefix="k_")
    return g
