"""Pictures of a packet's path over the hooks and of a conntrack entry's life.

Takes results (``nfteach.observe.PacketPath`` / ``CtLifecycle``), never backends. Node ids
are fixed: ``p0_s3`` is step 3 of packet 0, ``p0_end`` where it ended, ``ct4_confirmed``
a stage of entry ct#4.
"""
from __future__ import annotations

from typing import List, Optional

import graphviz

from .graphs import COLORS, add_legend, callback_label, esc, new_graph, style_for

PHASE_COLORS = {
    "unconfirmed": "#b45309", "confirmed": "#1d4ed8", "dying": "#b91c1c", "destroyed": "#b91c1c",
}
GOOD, BAD, HILITE = "#15803d", "#b91c1c", "#f59e0b"


def ct_line(ct) -> str:
    if ct is None:
        return '<font point-size="9" color="#6b7280">no conntrack entry</font>'
    color = PHASE_COLORS.get(ct.phase, "#374151")
    flags = "".join(f" [{f}]" for f in ct.flags)
    return (f'<font point-size="9" color="{color}">ct#{ct.id} <b>{esc(ct.state)}</b>{esc(flags)} · '
            f'<b>{esc(ct.phase)}</b></font>')


def _not_run(path, pkt, drop_ev) -> List:
    """The callbacks after the one that dropped, in that hook of that machine's chain."""
    for chain in path.chains:
        if chain.machine != drop_ev.machine:
            continue
        cbs = chain.callbacks(drop_ev.hook)
        for i, c in enumerate(cbs):
            if c.function == drop_ev.function and c.priority == drop_ev.priority:
                return cbs[i + 1:]
    return []


def path_graph(path, g: Optional[graphviz.Digraph] = None, prefix: str = "", changed=None) -> graphviz.Digraph:
    """One row per packet: who sent it, each callback that ran (verdict on the edge, the
    conntrack entry after it in the node), the wire, and where it was dropped or delivered."""
    own = g is None
    if own:
        g = new_graph("path", rankdir="TB", label=f"{path.command}  —  packet path, kernel {path.kernel}")
        g.attr("graph", ranksep="0.25")
    kinds: List[str] = []
    if not path.packets:
        g.node(f"{prefix}nothing", "<<i>no packet was sent by this command</i>>", shape="plaintext", style="")
    hl = path.highlight
    for pkt in path.packets:
        pid = f"{prefix}p{pkt.index}"
        fate = pkt.fate
        fate_color = BAD if fate == "dropped" else GOOD if fate == "delivered" else "#6b7280"
        with g.subgraph(name=f"cluster_{pid}") as row:
            # stepping through: the fate stays hidden until the last step of the packet
            pending = hl is not None and (hl[0] < pkt.index or (hl[0] == pkt.index and hl[1] < len(pkt.steps) - 1))
            shown_fate = f'<font color="{fate_color}"><b>{esc(fate)}</b></font>' if not pending else "<i>…</i>"
            row.attr(label=f'<<b>packet {pkt.index + 1}</b> · {shown_fate}<br/>{esc(pkt.summary)}>',
                     style="rounded", color="#9ca3af", fontsize="12")
            prev, prev_label, seg = None, "", None
            step_no = -1
            seg_graph = None
            future = False
            for n, ev in enumerate(pkt.events):
                nid = f"{pid}_s{n}"
                if ev.kind == "hook":
                    step_no += 1
                    key = (ev.machine, ev.hook)
                    if key != seg:
                        seg = key
                        seg_graph = f"cluster_{pid}_{ev.machine}_{ev.hook}_{n}"
                    with row.subgraph(name=seg_graph) as sg:
                        sg.attr(label=f'<<b>{esc(ev.machine)}</b> · {esc(ev.hook)}>', style="rounded,filled",
                                fillcolor="#fafafa", color="#d1d5db", fontsize="10")
                        kinds.append(ev.kind_of_owner)
                        st = style_for(ev.kind_of_owner)
                        future = hl is not None and hl[0] == pkt.index and step_no > hl[1] or (
                            hl is not None and pkt.index > hl[0])
                        if future:
                            st = style_for(ev.kind_of_owner, faded=True)
                        if hl == (pkt.index, step_no):
                            st.update(penwidth="4", color=HILITE)
                        if ev.verdict == "DROP" and not future:
                            st.update(color=BAD, penwidth="2.5" if hl != (pkt.index, step_no) else "4")
                        mark = "≠ " if changed and ev.function in changed else ""
                        verdict = (f'<font point-size="9" color="{BAD if ev.verdict == "DROP" else GOOD}">'
                                   f'<b>{esc(ev.verdict)}</b></font>')
                        owner = ev.owner if ev.kind_of_owner != "iptables" else ev.owner.replace("iptable_", "iptables ")
                        extra = "" if future else verdict + "  " + ct_line(ev.ct)  # not run yet: no verdict
                        sg.node(nid, callback_label(ev.function, ev.priority, owner or ev.kind_of_owner,
                                                    extra=extra, mark=mark), **st)
                        if ev.verdict == "DROP" and not future:
                            for j, c in enumerate(_not_run(path, pkt, ev)):
                                skip = f"{pid}_skip{n}_{j}"
                                sg.node(skip, callback_label(c.function, c.priority, c.label,
                                                             extra='<font point-size="8">not run</font>'),
                                        **style_for(c.kind, faded=True))
                                g.edge(nid if j == 0 else f"{pid}_skip{n}_{j - 1}", skip, style="dashed",
                                       color="#d1d5db", arrowhead="none")
                elif ev.kind == "send":
                    seg = None
                    row.node(nid, f'<<b>{esc(ev.machine)}</b> sends<br/><font point-size="9">{esc(ev.detail)}'
                                  f' → ip_local_out</font>>', shape="cds", fillcolor="#f3f4f6", color="#4b5563")
                elif ev.kind == "wire":
                    seg = None
                    row.node(nid, f'<<font point-size="9">veth → <b>{esc(ev.machine)}</b><br/>ip_rcv</font>>',
                             shape="cds", fillcolor="#f3f4f6", color="#4b5563")
                elif ev.kind in ("deliver", "drop") and pending:
                    row.node(nid, "<<i>… (step on to see)</i>>", **style_for("other", faded=True))
                elif ev.kind == "deliver":
                    row.node(nid, f'<<b>delivered</b><br/><font point-size="9">{esc(ev.machine)}: tcp_v4_rcv</font>>',
                             shape="box", style="rounded,filled", fillcolor="#dcfce7", color=GOOD, penwidth="2")
                elif ev.kind == "drop":
                    after = ct_line(ev.ct) if ev.ct is not None else '<font point-size="9">no conntrack entry</font>'
                    left = ""
                    if ev.ct is not None:
                        left = ("<br/><font point-size=\"9\">the entry stays in the table</font>"
                                if ev.ct.phase == "confirmed" else
                                "<br/><font point-size=\"9\">the entry is freed with the packet</font>")
                    row.node(nid, f'<<b>✖ dropped</b> on {esc(ev.machine)}<br/><font point-size="9">'
                                  f'kfree_skb ({esc(ev.detail)})</font><br/>{after}{left}>',
                             shape="box", style="rounded,filled", fillcolor="#fee2e2", color=BAD, penwidth="2.5")
                if prev is not None:
                    attrs = {}
                    if prev_label:
                        attrs["label"] = prev_label
                        attrs["fontcolor"] = BAD if prev_label == "DROP" else GOOD
                    if prev_label == "DROP":
                        attrs.update(color=BAD, penwidth="2")
                    g.edge(prev, nid, **attrs)
                prev = nid
                prev_label = ev.verdict if ev.kind == "hook" and not (ev.kind == "hook" and future) else ""
    if own:  # the key under the last packet: it adds no width
        add_legend(g, kinds, prefix=prefix, below=prev if path.packets and prev else None)
    return g


# -- lifecycles --------------------------------------------------------------------------
STAGES = ("allocated", "unconfirmed", "confirmed")
STAGE_TEXT = {
    "existing": "already in the table",
    "allocated": "allocated\ninit_conntrack",
    "unconfirmed": "unconfirmed\nowned by the skb",
    "confirmed": "confirmed\nin the hash table",
    "insert_failed": "insert failed\n(clash): packet dropped",
    "deleted": "deleted\nnf_ct_delete: unhashed, dying",
    "destroyed": "destroyed\nfreed",
}


def lifecycle_graph(lc, g: Optional[graphviz.Digraph] = None, prefix: str = "", changed=None) -> graphviz.Digraph:
    """One row per entry the command touched: allocated → unconfirmed → confirmed, or
    destroyed, with the call stack that destroyed it (innermost first)."""
    own = g is None
    if own:
        g = new_graph("lifecycle", label=f"{lc.command}  —  conntrack entries, kernel {lc.kernel}")
    if not lc.entries:
        g.node(f"{prefix}nothing", "<<i>no conntrack entry was created or destroyed</i>>", shape="plaintext", style="")
    t0 = min((e.time for h in lc.entries for e in h.events), default=0.0)
    for h in reversed(lc.entries):  # LR stacks rows bottom-up in declaration order
        cid = f"{prefix}ct{h.id}"
        with g.subgraph(name=f"cluster_{cid}") as row:
            row.attr(label=f"<<b>ct#{h.id}</b> on {esc(h.machine)}: {esc(h.tuple)}>",
                     style="rounded", color="#9ca3af", fontsize="12")
            kinds = h.kinds()
            prev = None
            for ev in h.events:
                nid = f"{cid}_{ev.kind}"
                head, _, sub = STAGE_TEXT.get(ev.kind, ev.kind).partition("\n")
                bad = ev.kind in ("destroyed", "deleted", "insert_failed")
                color = BAD if bad else COLORS["conntrack"][1]
                fill = "#fee2e2" if bad else "#dbeafe" if ev.kind == "confirmed" else "#fef3c7"
                where = f"in {ev.where}" if ev.where else ""
                dt = f"+{(ev.time - t0) * 1000:.2f} ms" if ev.kind != "existing" else ""
                lines = [f"<b>{esc(head)}</b>", f'<font point-size="9">{esc(sub)}</font>']
                if where or dt:
                    lines.append(f'<font point-size="8" color="#4b5563">{esc(" · ".join(x for x in (where, dt) if x))}</font>')
                row.node(nid, "<" + "<br/>".join(lines) + ">", color=color, fillcolor=fill, penwidth="1.6")
                if prev is not None:
                    g.edge(prev, nid, color=BAD if bad else "#374151")
                if ev.kind == "unconfirmed" and "confirmed" not in kinds and "destroyed" in kinds:
                    ghost = f"{cid}_never_confirmed"
                    row.node(ghost, "<<b>confirmed</b><br/><font point-size=\"9\">never: the packet was dropped"
                                    "<br/>before the confirm hook</font>>", **style_for("other", faded=True))
                    g.edge(nid, ghost, style="dashed", color="#d1d5db")
                prev = nid
                if ev.stack:
                    sid = f"{cid}_{ev.kind}_stack"
                    frames = "".join(f'<tr><td align="left"><font face="DejaVu Sans Mono,monospace" point-size="9">'
                                     f'{esc(f)}</font></td></tr>' for f in ev.stack)
                    row.node(sid, f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">'
                                  f'<tr><td align="left"><font point-size="9"><b>call stack</b> (innermost first)'
                                  f'</font></td></tr>{frames}</table>>',
                             shape="note", style="filled", fillcolor="#fff7ed" if bad else "#f9fafb",
                             color="#9ca3af")
                    g.edge(nid, sid, style="dashed", arrowhead="none", color="#9ca3af")
            if "destroyed" not in kinds:
                f = h.final
                flags = "".join(f" [{x}]" for x in f.flags)
                end = f"{cid}_final"
                row.node(end, f'<<b>still in the table</b><br/><font point-size="9">{esc(f.state)}{esc(flags)} · '
                              f'{esc(f.phase)}</font>>', shape="box", style="rounded,filled,bold",
                         fillcolor="#dbeafe", color=COLORS["conntrack"][1])
                if prev is not None:
                    g.edge(prev, end, style="dashed")
    return g
