"""Every widget driven programmatically, hostile input included, and the %lab magics."""
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("graphviz")

from nfteach import Lab, observe  # noqa: E402
from nfteach import widgets as nw  # noqa: E402
from nfteach.widgets import magics, validate  # noqa: E402

NFT_TRICK = r"""sudo nft add table ip my_table
sudo nft add chain ip my_table my_input { type filter hook input priority 2147483647 \; }
sudo nft add rule ip my_table my_input tcp dport 2570 counter drop
sudo modprobe nf_conntrack enable_hooks=1
"""


@pytest.fixture
def lab():
    with Lab("sim", kernel="5.10") as lab:
        yield nw.use_lab(lab)


@pytest.fixture
def trick(lab):
    lab.script(NFT_TRICK)
    return lab


def state(lab):
    """What hostile input must not change: hooks, the table, the commands run."""
    return (observe.hooks(lab).lanes, lab.backend.k.netns("vm").ct and len(lab.backend.k.netns("vm").ct.table),
            len(lab.history))


def test_current_lab_default_is_sim():
    nw.use_lab(None)
    lab = nw.current_lab()
    assert lab.name == "sim"
    assert nw.current_lab() is lab


def test_send_packet_shows_the_drop(trick):
    w = nw.SendPacket()
    assert w.lab is trick
    sent = w.send()
    assert w.error_text == ""
    syn = sent.path.packets[0]
    assert syn.fate == "dropped" and syn.dropped_by.function == "nft_do_chain_ipv4"
    assert "dropped on vm" in w.status.value and "nft_do_chain_ipv4" in w.status.value
    assert "<svg" in w.picture.value and "dropped" in w.picture.value
    # the button does the same
    w.button.click()
    assert "dropped" in w.picture.value


def test_send_packet_to_listener_gets_delivered(lab):
    lab.run("sudo modprobe nf_conntrack enable_hooks=1")
    w = nw.SendPacket(dport=22)
    sent = w.send()
    first = sent.path.packets[0]
    assert first.fate == "delivered"
    # the vm answers the SYN with a SYN-ACK; the host has no socket for it and resets
    flags = [p.flags for p in sent.path.packets]
    assert flags[:3] == ["S", "S.", "R"]


@pytest.mark.parametrize("field,value,msg", [
    ("dport", "70000", "destination port must be a number from 1 to 65535"),
    ("dport", "22; rm -rf /", "destination port must be"),
    ("sport", "-1", "source port must be"),
    ("daddr", "192.168.122.204; reboot", "destination must be an IPv4 address"),
    ("saddr", "$(id)", "source must be an IPv4 address"),
])
def test_send_packet_hostile_input(trick, field, value, msg):
    w = nw.SendPacket()
    getattr(w, field).value = value
    before = state(trick)
    assert w.send() is None
    assert msg in w.error_text and "\n" not in w.error_text
    assert "⚠" in w.error.value and w.picture.value == ""
    assert state(trick) == before


def test_send_packet_needs_a_flag(trick):
    w = nw.SendPacket(flags=())
    assert w.send() is None and "at least one TCP flag" in w.error_text


def test_rule_editor_nft_add_at_int_max_and_remove(lab):
    lab.run("sudo modprobe nf_conntrack enable_hooks=1")
    w = nw.RuleEditor(table="t1", chain="c1", priority="0")
    w.stop.value = validate.INT_MAX  # the named stop "confirm"
    assert w.priority.value == "2147483647"
    res = w.apply()
    assert w.error_text == "" and all(r.status == 0 for r in res)
    li = [c.function for c in observe.hooks(lab).callbacks("LOCAL_IN")]
    # added after conntrack: goes *before* ipv4_confirm at equal priority
    assert li[-2:] == ["nft_do_chain_ipv4", "ipv4_confirm"]
    assert "hooks changed" in w.status.value and "<svg" in w.picture.value
    assert "nft add chain ip t1 c1 '{' type filter hook input priority 2147483647 ';' '}'" in w.transcript_text
    w.action.value = "remove"
    w.apply()
    assert [c.function for c in observe.hooks(lab).callbacks("LOCAL_IN")] == ["ipv4_confirm"]


@pytest.mark.parametrize("prio", ["-2147483648", "INT_MIN", "raw", "conntrack", "mangle", "filter", "confirm"])
def test_rule_editor_priority_range(lab, prio):
    w = nw.RuleEditor(priority=prio, hook="prerouting")
    w.apply()
    assert w.error_text == ""
    expected = {"raw": -300, "conntrack": -200, "mangle": -150, "filter": 0, "confirm": 2**31 - 1,
                "INT_MIN": -(2**31)}.get(prio, prio)
    assert [c.priority for c in observe.hooks(lab).callbacks("PRE_ROUTING")] == [int(expected)]


@pytest.mark.parametrize("attr,value,msg", [
    ("priority", "1; rm -rf /", "priority must be an integer"),
    ("priority", "2147483648", "priority must be an integer"),
    ("priority", "-2147483649", "priority must be an integer"),
    ("dport", "70000", "tcp dport must be a number from 1 to 65535"),
    ("chain", "x; reboot", "chain name must be"),
    ("chain", "a`id`", "chain name must be"),
    ("table", "t $(rm -rf /)", "table name must be"),
    ("table", "t|tee", "table name must be"),
])
def test_rule_editor_hostile_input(lab, attr, value, msg):
    w = nw.RuleEditor()
    getattr(w, attr).value = value
    before = state(lab)
    assert w.apply() is None
    assert msg in w.error_text and "\n" not in w.error_text
    assert state(lab) == before


def test_rule_editor_iptables(lab):
    lab.run("sudo modprobe nf_conntrack enable_hooks=1")
    w = nw.RuleEditor(frontend="iptables-legacy", table="filter", chain="INPUT")
    w.apply()
    assert w.error_text == ""
    assert "iptable_filter_hook" in [c.function for c in observe.hooks(lab).callbacks("LOCAL_IN")]
    assert "-A INPUT -p tcp --dport 2570 -j DROP" in w.transcript_text
    w.action.value = "remove"
    w.apply()
    assert "-D INPUT" in w.transcript_text
    w.table.value = "filter;ls"
    before = state(lab)
    assert w.apply() is None and "iptables table must be one of" in w.error_text
    assert state(lab) == before


def test_stepper(trick):
    s = nw.step_through(trick, "@host nc -w 1 -z 192.168.122.204 2570")
    n = len(s.steps)
    assert n >= 6 and s.index == 0 and "1/" in s.caption.value
    first = s.picture.value
    assert s.next() == 1 and s.picture.value != first
    s.go(n + 10)
    assert s.index == n - 1
    assert "nft_do_chain_ipv4" in s.caption.value and "DROP" in s.caption.value
    assert s.prev() == n - 2 and "ipv4_confirm" in s.caption.value and "confirmed" in s.caption.value
    s.next_b.click()
    assert s.index == n - 1


def test_diff_view(trick):
    d = nw.DiffView()
    text = d.run()
    added = [x for x in text.splitlines() if x.startswith("+ ")]
    assert any("dport=2570" in x and "SYN_SENT" in x for x in added)
    assert not any(x.startswith("- ") for x in text.splitlines())  # timeouts ticking are not changes
    d.command.value = "sudo nft delete table ip my_table"
    text = d.run()
    assert any(x.startswith("- ") and "nft_do_chain_ipv4" in x for x in text.splitlines())
    d.command.value = "sudo conntrack -F; rm -rf /"
    before = state(trick)
    assert d.run() == "" and "one command per line" in d.error_text
    assert state(trick)[:2] == before[:2]


@pytest.mark.parametrize("pick,right", [(0, True), (1, False)])
def test_predict_then_observe_on_a_fresh_lab(lab, pick, right):
    """The exercise sets up its own experiment: a fresh lab agrees with its explanation."""
    p = nw.syn_in_table_exercise()
    w = p.widget()
    w.button.click()                                   # nothing picked: nothing runs, nothing shown
    assert "pick one" in w.verdict.value and len(lab.history) == 0
    w.choice.value = w.choice.options[pick]
    w.button.click()
    assert p.verdict.correct is right and ("✔" in w.verdict.value) is right
    assert "dport=2570" in w.verdict.value and "confirmed, then the chain drops it" in w.verdict.value
    assert w.button.disabled and w.choice.disabled


def test_validate_line_quotes_everything():
    assert validate.line(["nft", "add", "rule", "x; rm -rf /"]) == "nft add rule 'x; rm -rf /'"


def test_magics_line_and_cell(lab):
    out = magics.lab_magic("sudo conntrack -L")
    assert "0 flow entries" in out.text and out.hooks is None
    cell = magics.lab_magic("", NFT_TRICK + "sudo list-nf-hooks\n")
    assert cell.hooks is not None
    bundle = cell._repr_mimebundle_()
    assert "nft_do_chain_ipv4" in bundle["text/plain"] and "<svg" in bundle["text/html"]
    assert magics.lab_magic("sudo nft list ruleset").hooks is None  # nothing changed


def test_load_ipython_extension(lab):
    ipy = pytest.importorskip("IPython")
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    if ip is None:  # pragma: no cover
        pytest.skip("no IPython shell")
    ip.run_line_magic("load_ext", "nfteach.widgets.magics")
    out = ip.run_line_magic("lab", "sudo lsmod")
    assert "nf_conntrack" in out.text or out.text
    out = ip.run_cell_magic("lab", "", "sudo modprobe nf_conntrack enable_hooks=1\n")
    assert out.hooks is not None and "ipv4_confirm" in out.hooks.dot
    assert ipy is not None


def test_step_through_explains_a_backend_without_the_model(lab, monkeypatch):
    from nfteach.model.errors import LabError

    def refuse(*a, **k):
        raise LabError("observing a packet path needs the sim backend")

    monkeypatch.setattr(observe, "path", refuse)
    w = nw.step_through(lab, "@host nc -w 1 -z 192.168.122.204 2570")
    assert "needs the sim backend" in w.error_text and w.children == (w.error,)
