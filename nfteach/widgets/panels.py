"""The course's widgets. Each is an ``ipywidgets.VBox`` with plain methods that do what its
buttons do (``SendPacket.send()``, ``RuleEditor.apply()``, ``Stepper.next()``, ...), so a
test or a notebook cell can drive it without a browser.

Bad input shows one line in ``.error`` (``.error_text`` is the plain text) and changes
nothing in the lab.
"""
from __future__ import annotations

import difflib
import html
import re
from typing import List, Optional, Sequence

import ipywidgets as W

from .. import observe
from ..course.svg import fit
from ..model.errors import LabError
from . import current_lab
from . import validate as v

ERR_STYLE = "color:#b91c1c;font-family:sans-serif"


class _Panel(W.VBox):
    """Common parts: a one-line error, a status line and a picture area."""

    def __init__(self, lab=None, **kw):
        super().__init__(**kw)
        self.lab = current_lab(lab)
        self.error = W.HTML("")
        self.status = W.HTML("")
        self.picture = W.HTML("")
        self.error_text = ""

    def _fail(self, msg: str) -> None:
        self.error_text = " ".join(str(msg).split())
        self.error.value = f'<span style="{ERR_STYLE}">⚠ {html.escape(self.error_text)}</span>'

    def _ok(self) -> None:
        self.error_text = ""
        self.error.value = ""

    def _run(self, argv: Sequence[str]):
        """Run one command built from an argument list (quoted, never a shell)."""
        return self.lab.run(v.line(argv))


def _svg(svg: str) -> str:
    """A picture that fits the column (click to enlarge), as the notebooks show them."""
    return f'<div class="nfteach-picture">{fit(svg)}</div>'


def _pre(text: str) -> str:
    return f'<pre style="font-size:12px;line-height:1.3;margin:4px 0">{html.escape(text)}</pre>'


# -- send a packet --------------------------------------------------------------------------
class SendPacket(_Panel):
    """Send one TCP segment (source/destination, ports, flags) through the modelled stack
    and draw its path: which callbacks ran, each verdict, and where it ended."""

    def __init__(self, lab=None, machine="host", daddr="192.168.122.204", dport=2570, sport=40000,
                 flags=("SYN",)):
        super().__init__(lab)
        self.machine = W.Dropdown(options=["host", "vm"], value=machine, description="from")
        self.saddr = W.Text(value="", placeholder="(the machine's own)", description="source")
        self.daddr = W.Text(value=daddr, description="destination")
        self.sport = W.Text(value=str(sport), description="src port")
        self.dport = W.Text(value=str(dport), description="dst port")
        self.flags = {n: W.Checkbox(value=n in flags, description=n, indent=False, layout=W.Layout(width="70px"))
                      for n in v.TCP_FLAGS}
        self.button = W.Button(description="send", button_style="primary", icon="paper-plane")
        self.button.add_class("nfteach-send")
        self.button.on_click(lambda _b: self.send())
        self.result: Optional[observe.SentPacket] = None
        self.children = [
            W.HBox([self.machine, self.saddr]), W.HBox([self.daddr, self.dport]), W.HBox([self.sport]),
            W.HBox(list(self.flags.values())), W.HBox([self.button, self.status]), self.error, self.picture,
        ]

    def send(self) -> Optional[observe.SentPacket]:
        try:
            machine = v.one_of(self.machine.value, ("host", "vm"), "from")
            own = {"host": "192.168.122.1", "vm": "192.168.122.204"}[machine]
            saddr = v.ipv4(self.saddr.value or own, "source")
            daddr = v.ipv4(self.daddr.value, "destination")
            sport = v.port(self.sport.value, "source port")
            dport = v.port(self.dport.value, "destination port")
            flags = v.flags(n for n, cb in self.flags.items() if cb.value)
        except v.WidgetInputError as e:
            self._fail(e)
            return None
        try:  # the lab says what its backend cannot do (a hand-made packet needs the model)
            self.result = observe.send(self.lab, machine, saddr, daddr, sport, dport, flags)
        except LabError as e:
            self._fail(e)
            return None
        self._ok()
        p = self.result.path
        first = p.packets[0] if p.packets else None
        if first is None:
            self.status.value = "nothing was sent"
        else:
            by = first.dropped_by
            how = (f"dropped on {by.machine} by <b>{html.escape(by.function)}</b> ({by.hook}, priority {by.priority})"
                   if by else first.fate)
            self.status.value = f'<span class="nfteach-fate">{html.escape(first.summary)}: {how}</span>'
        self.picture.value = _svg(p.svg())
        return self.result


# -- add or remove a rule -----------------------------------------------------------------
class RuleEditor(_Panel):
    """Add or remove a drop/accept rule for a TCP port: an nft chain at any priority
    (INT_MIN..INT_MAX, or a named stop) or an iptables table. Shows the commands it ran and
    the hook chain afterwards."""

    FRONTENDS = ("nft", "iptables-legacy", "iptables")

    def __init__(self, lab=None, frontend="nft", table="my_table", chain="my_input", hook="input",
                 priority="filter", dport=2570, verdict="drop"):
        super().__init__(lab)
        self.frontend = W.Dropdown(options=list(self.FRONTENDS), value=frontend, description="with")
        self.action = W.ToggleButtons(options=["add", "remove"], value="add")
        self.table = W.Text(value=table, description="table")
        self.chain = W.Text(value=chain, description="chain")
        self.hook = W.Dropdown(options=list(v.NFT_HOOKS), value=hook, description="hook")
        self.priority = W.Text(value=str(priority), description="priority")
        self.stop = W.Dropdown(options=[("named stop…", None)] + [(f"{n} ({p})", p) for n, p in v.PRIORITY_STOPS],
                               value=None, description="")
        self.stop.observe(self._stop_picked, names="value")
        self.dport = W.Text(value=str(dport), description="tcp dport")
        self.verdict = W.Dropdown(options=["drop", "accept"], value=verdict, description="verdict")
        self.button = W.Button(description="apply", button_style="warning")
        self.button.on_click(lambda _b: self.apply())
        self.transcript = W.HTML("")
        self.transcript_text = ""
        self.children = [W.HBox([self.frontend, self.action]), W.HBox([self.table, self.chain]),
                         W.HBox([self.hook, self.priority, self.stop]), W.HBox([self.dport, self.verdict]),
                         W.HBox([self.button, self.status]), self.error, self.transcript, self.picture]

    def _stop_picked(self, change) -> None:
        if change["new"] is not None:
            self.priority.value = str(change["new"])

    def commands(self) -> List[List[str]]:
        """The argument lists ``apply`` would run (raises ``WidgetInputError`` on bad input)."""
        fe = v.one_of(self.frontend.value, self.FRONTENDS, "front end")
        act = v.one_of(self.action.value, ("add", "remove"), "action")
        port = str(v.port(self.dport.value, "tcp dport"))
        verdict = v.one_of(self.verdict.value, ("drop", "accept"), "verdict")
        if fe == "nft":
            table = v.name(self.table.value, "table name")
            chain = v.name(self.chain.value, "chain name")
            hook = v.one_of(self.hook.value, v.NFT_HOOKS, "hook")
            prio = str(v.priority(self.priority.value))
            if act == "remove":
                return [["sudo", "nft", "delete", "table", "ip", table]]
            return [["sudo", "nft", "add", "table", "ip", table],
                    ["sudo", "nft", "add", "chain", "ip", table, chain, "{", "type", "filter", "hook", hook,
                     "priority", prio, ";", "}"],
                    ["sudo", "nft", "add", "rule", "ip", table, chain, "tcp", "dport", port, "counter", verdict]]
        table = v.one_of(self.table.value, v.IPT_TABLES, "iptables table")
        chain = v.one_of(self.chain.value, v.IPT_CHAINS, "iptables chain")
        op = "-A" if act == "add" else "-D"
        return [["sudo", fe, "-t", table, op, chain, "-p", "tcp", "--dport", port, "-j", verdict.upper()]]

    def apply(self):
        try:
            cmds = self.commands()
        except v.WidgetInputError as e:
            self._fail(e)
            return None
        self._ok()
        before = observe.hooks(self.lab)
        results = [self._run(a) for a in cmds]
        after = observe.hooks(self.lab)
        self.transcript_text = "".join(str(r) for r in results if r is not None)
        self.transcript.value = _pre(self.transcript_text)
        changed = before.lanes != after.lanes
        self.status.value = "hooks changed" if changed else "hooks unchanged"
        self.picture.value = _svg(after.svg())
        return results


# -- step through a path ------------------------------------------------------------------
class Stepper(_Panel):
    """One callback at a time along a ``PacketPath``: the current step is highlighted, the
    ones still to come are faded."""

    def __init__(self, path: observe.PacketPath, lab=None):
        super().__init__(lab)
        self.path = path
        self.steps = path.steps()
        n = max(len(self.steps) - 1, 0)
        self.slider = W.IntSlider(value=0, min=0, max=n, description="step")
        self.prev_b = W.Button(description="◀ previous")
        self.next_b = W.Button(description="next ▶")
        self.prev_b.on_click(lambda _b: self.prev())
        self.next_b.on_click(lambda _b: self.next())
        self.slider.observe(lambda ch: self._show(ch["new"]), names="value")
        self.caption = W.HTML("")
        self.children = [W.HBox([self.prev_b, self.slider, self.next_b]), self.caption, self.picture]
        self._show(0)

    @property
    def index(self) -> int:
        return self.slider.value

    def _show(self, i: int) -> None:
        if not self.steps:
            self.caption.value = "this command sent no packet through a hook"
            self.picture.value = _svg(self.path.svg())
            return
        pkt, ev = self.steps[i]
        ct = ev.ct.short() if ev.ct else "no conntrack entry"
        self.caption.value = (f"<b>{i + 1}/{len(self.steps)}</b> packet {pkt.index + 1} ({html.escape(pkt.flags)}) "
                              f"on <b>{ev.machine}</b> {ev.hook} priority {ev.priority}: "
                              f"<code>{html.escape(ev.function)}</code> → <b>{ev.verdict}</b>; {html.escape(ct)}")
        self.picture.value = _svg(self.path.at(i).svg())

    def go(self, i: int) -> int:
        self.slider.value = min(max(i, 0), self.slider.max)
        return self.slider.value

    def next(self) -> int:
        return self.go(self.index + 1)

    def prev(self) -> int:
        return self.go(self.index - 1)


def step_through(lab, line: str):
    """Run ``line`` on the sim and step through its packets' path; on a backend that cannot
    watch a packet, a panel whose one line says why."""
    lab = current_lab(lab)
    try:
        path = observe.path(lab, line)
    except LabError as e:
        panel = _Panel(lab)
        panel._fail(e)
        panel.children = [panel.error]
        return panel
    return Stepper(path, lab)


# -- kernels side by side -------------------------------------------------------------------
class KernelCompare(_Panel):
    """The same script on two kernel profiles of the simulator: their hook chains, one above
    the other; ≠ marks a function the other kernel calls by another name, + one it lacks."""

    def __init__(self, script: str, kernels: Sequence[str] = ("5.10", "6.1", "6.18"), left: str = "5.10",
                 right: Optional[str] = None, lab=None):
        super().__init__(lab)
        self.script = script
        kernels = list(kernels)
        self.left = W.Dropdown(options=kernels, value=left, description="kernel")
        self.right = W.Dropdown(options=kernels, value=right or kernels[-1], description="vs")
        self.button = W.Button(description="compare", button_style="info")
        self.button.add_class("nfteach-compare")
        self.button.on_click(lambda _b: self.compare())
        self.result = None
        self.children = [W.HBox([self.left, self.right, self.button]), self.error, self.status, self.picture]
        self.compare()

    def compare(self):
        if self.left.value == self.right.value:
            self._fail("pick two different kernels")
            return None
        try:
            self.result = observe.compare(self.script, kernels=(self.left.value, self.right.value))
        except LabError as e:
            self._fail(e)
            return None
        self._ok()
        only_l, only_r = self.result.only_left(), self.result.only_right()
        self.status.value = (f"only on {html.escape(self.left.value)}: <code>{html.escape(', '.join(only_l) or '—')}"
                             f"</code>; only on {html.escape(self.right.value)}: "
                             f"<code>{html.escape(', '.join(only_r) or '—')}</code>")
        self.picture.value = _svg(self.result.svg())
        return self.result


# -- before/after diff ----------------------------------------------------------------------
_TIMEOUT = re.compile(r"^(\S+\s+\d+\s+)\d+(\s)")


def _snapshot(lab) -> List[str]:
    ct = lab.run("sudo conntrack -L")
    hooks = lab.run("sudo list-nf-hooks")
    lines = ["# conntrack -L"] + [ln for ln in (ct.output if ct else "").splitlines() if "flow entries" not in ln]
    lines += ["# list-nf-hooks"] + [ln for ln in (hooks.output if hooks else "").splitlines() if ln.strip()]
    return lines


class DiffView(_Panel):
    """Run a lab command and show what it changed in the conntrack table and the hook list
    (timeouts, which tick on their own, are left out of the comparison)."""

    def __init__(self, lab=None, command: str = "@host nc -w 1 -z 192.168.122.204 2570"):
        super().__init__(lab)
        self.command = W.Text(value=command, description="command", layout=W.Layout(width="520px"))
        self.button = W.Button(description="run and diff", button_style="info")
        self.button.on_click(lambda _b: self.run())
        self.diff_text = ""
        self.children = [W.HBox([self.command, self.button]), self.error, self.status, self.picture]

    def run(self) -> str:
        line = self.command.value
        if not line.strip():
            self._fail("type a lab command, e.g. sudo conntrack -F")
            return ""
        before = _snapshot(self.lab)
        r = self.lab.run(line)
        if r is not None and r.status == 2 and r.output.startswith("nfteach:"):
            self._fail(r.output.strip().splitlines()[0])
            return ""
        self._ok()
        after = _snapshot(self.lab)
        norm = lambda xs: [_TIMEOUT.sub(r"\1…\2", x) for x in xs]  # noqa: E731
        nb, na = norm(before), norm(after)
        out = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, nb, na).get_opcodes():
            if tag == "equal":
                out += ["  " + x for x in after[j1:j2]]
                continue
            out += ["- " + x for x in before[i1:i2]]
            out += ["+ " + x for x in after[j1:j2]]
        self.diff_text = "\n".join(out)
        self.status.value = _pre(str(r) if r is not None else "")
        rows = []
        for x in out:
            color = "#b91c1c" if x.startswith("- ") else "#15803d" if x.startswith("+ ") else "#374151"
            weight = "bold" if x[0] in "+-" else "normal"
            rows.append(f'<span style="color:{color};font-weight:{weight}">{html.escape(x)}</span>')
        self.picture.value = '<pre style="font-size:12px">' + "\n".join(rows) + "</pre>"
        return self.diff_text


# -- predict, then observe ------------------------------------------------------------------
SYN_TRICK = r"""sudo nft add table ip my_table
sudo nft add chain ip my_table my_input { type filter hook input priority 2147483647 \; }
sudo nft add rule ip my_table my_input tcp dport 2570 counter drop
sudo modprobe nf_conntrack enable_hooks=1
@host nc -w 1 -z 192.168.122.204 2570
sudo conntrack -L
"""


def syn_in_table_exercise(lab=None):
    """The article's question as a prediction widget (``nfteach.course.predict``): an nft
    chain at INT_MAX made *before* conntrack is enabled drops tcp/2570 — is the dropped SYN
    in the table? The experiment sets everything up itself, so a fresh lab answers it."""
    from ..course import predict

    yes, no = "yes: the entry is in conntrack -L (SYN_SENT)", "no: the entry went away with the dropped SYN"
    lab = current_lab(lab)

    def experiment():
        t = lab.script(SYN_TRICK)
        return (yes if "dport=2570" in t.results[-1].output else no), t

    return predict(
        "An nft chain at priority 2147483647, created before conntrack was enabled, drops tcp/2570. "
        "After `nc -z` from the host, does the vm's conntrack -L show an entry for port 2570?",
        [yes, no], experiment,
        explain="conntrack's confirm callback was registered after the chain, so among equals it runs "
                "first: the SYN is confirmed, then the chain drops it.",
    )
