"""Pictures: the DOT structure of hook chains, packet paths, lifecycles and comparisons,
the ``nfteach render`` sub-commands, and SVG that is the same on every run."""
import argparse
import re
import shutil

import pytest

pytest.importorskip("graphviz")

from nfteach import Lab, observe  # noqa: E402
from nfteach.render import graphs  # noqa: E402

NFT_TRICK = r"""sudo rmmod nf_conntrack_netlink nf_conntrack
sudo nft add table ip my_table
sudo nft add chain ip my_table my_input { type filter hook input priority 2147483647 \; }
sudo nft add rule ip my_table my_input tcp dport 2570 counter drop
sudo modprobe nf_conntrack enable_hooks=1
"""
NC = "@host nc -w 1 -z 192.168.122.204 2570"
IPT_DROP = """sudo iptables-legacy -t filter -A INPUT -p tcp --dport 2570 -j DROP
sudo modprobe nf_conntrack enable_hooks=1
"""
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")


def edges(dot):
    return set(re.findall(r"^\s*(\S+) -> (\S+)(?: \[(.*)\])?$", dot, re.M))


def node_attrs(dot, nid):
    m = re.search(rf"^\s*{re.escape(nid)} \[(.*)\]$", dot, re.M)
    assert m, f"no node {nid}"
    return m.group(1)


@pytest.fixture(params=["5.10", "6.18"])
def trick(request):
    with Lab("sim", kernel=request.param) as lab:
        lab.script(NFT_TRICK)
        yield lab


def test_hook_chain_lanes_in_run_order(trick):
    chain = observe.hooks(trick)
    li = chain.callbacks("LOCAL_IN")
    confirm = "ipv4_confirm" if trick.kernel == "5.10" else "nf_confirm"
    assert [(c.function, c.priority) for c in li][-2:] == [(confirm, 2147483647), ("nft_do_chain_ipv4", 2147483647)]
    assert li[-2].conntrack and li[-1].kind == "nft"
    dot = chain.dot
    n = len(li)
    # conntrack's confirm, then the nft chain: an edge in the lane, and the lane is a cluster
    assert (f"h_LOCAL_IN_{n - 2}", f"h_LOCAL_IN_{n - 1}") in {(a, b) for a, b, _ in edges(dot)}
    assert "subgraph cluster_h_LOCAL_IN" in dot
    for hook in observe.HOOKS:
        assert f"subgraph cluster_h_{hook}" in dot
    a = node_attrs(dot, f"h_LOCAL_IN_{n - 2}")
    assert "peripheries=2" in a and graphs.COLORS["conntrack"][1] in a  # conntrack marked
    assert graphs.COLORS["nft"][1] in node_attrs(dot, f"h_LOCAL_IN_{n - 1}")
    assert "nft ip my_table my_input" in dot and "CONNTRACK_CONFIRM" in dot


def test_nft_trick_path_confirmed_then_dropped(trick):
    p = observe.path(trick, NC)
    syn = p.packets[0]
    assert syn.flags == "S" and syn.fate == "dropped"
    steps = syn.steps
    vm_in = [e for e in steps if e.machine == "vm" and e.hook == "LOCAL_IN"]
    confirm = "ipv4_confirm" if trick.kernel == "5.10" else "nf_confirm"
    names = [e.function for e in vm_in]
    assert names.index(confirm) + 1 == names.index("nft_do_chain_ipv4")
    c, d = vm_in[names.index(confirm)], vm_in[names.index("nft_do_chain_ipv4")]
    assert c.verdict == "ACCEPT" and c.ct.phase == "confirmed" and c.ct.state == "SYN_SENT"
    assert d.verdict == "DROP" and d.priority == 2147483647
    drop = syn.events[-1]
    assert drop.kind == "drop" and drop.ct.phase == "confirmed" and drop.ct.state == "SYN_SENT"
    assert "UNREPLIED" in drop.ct.flags
    # the DOT: confirm -> nft (ACCEPT) -> dropped (DROP), in the vm LOCAL_IN cluster
    dot = p.dot
    ids = {e: f"p0_s{syn.events.index(e)}" for e in (c, d, drop)}
    es = {(a, b): attrs or "" for a, b, attrs in edges(dot)}
    assert "ACCEPT" in es[(ids[c], ids[d])]
    assert "DROP" in es[(ids[d], ids[drop])]
    assert confirm in node_attrs(dot, ids[c]) and "confirmed" in node_attrs(dot, ids[c])
    assert "2147483647" in node_attrs(dot, ids[d]) or "INT_MAX" in node_attrs(dot, ids[d])
    assert "SYN_SENT" in node_attrs(dot, ids[drop]) and "stays in the table" in node_attrs(dot, ids[drop])
    assert re.search(r"subgraph cluster_p0_vm_LOCAL_IN_\d+", dot)
    # and conntrack -L agrees
    assert "dport=2570" in trick.run("sudo conntrack -L").output


def test_iptables_drop_frees_the_unconfirmed_entry():
    with Lab("sim", kernel="5.10") as lab:
        lab.script(IPT_DROP)
        lc = observe.lifecycle(lab, NC)
    vm = [h for h in lc.entries if h.machine == "vm"][0]
    assert vm.kinds() == ["allocated", "unconfirmed", "destroyed"]
    assert vm.destroy_stack[:2] == ("destroy_conntrack", "nf_conntrack_destroy")
    assert "kfree_skb" in vm.destroy_stack and "ip_local_deliver" in vm.destroy_stack
    host = [h for h in lc.entries if h.machine == "host"][0]
    assert host.kinds() == ["allocated", "unconfirmed", "confirmed"]
    dot = lc.dot
    es = {(a, b) for a, b, _ in edges(dot)}
    assert (f"ct{vm.id}_unconfirmed", f"ct{vm.id}_destroyed") in es
    assert (f"ct{vm.id}_unconfirmed", f"ct{vm.id}_never_confirmed") in es
    assert (f"ct{vm.id}_destroyed", f"ct{vm.id}_destroyed_stack") in es
    assert "destroy_conntrack" in node_attrs(dot, f"ct{vm.id}_destroyed_stack")
    assert (f"ct{host.id}_confirmed", f"ct{host.id}_final") in es


def test_lifecycle_nft_trick_stays_confirmed():
    with Lab("sim", kernel="6.18") as lab:
        lab.script(NFT_TRICK)
        lc = observe.lifecycle(lab, NC)
        vm = [h for h in lc.entries if h.machine == "vm"][0]
        assert vm.kinds() == ["allocated", "unconfirmed", "confirmed"]
        assert vm.final.state == "SYN_SENT" and vm.final.phase == "confirmed"
        flush = observe.lifecycle(lab, "sudo conntrack -F")
    gone = [h for h in flush.entries if h.id == vm.id][0]
    assert gone.kinds() == ["existing", "deleted", "destroyed"]
    assert gone.destroy_stack[0] == "nf_ct_destroy"


def test_comparison_marks_renamed_functions():
    c = observe.compare(IPT_DROP, kernels=("5.10", "6.18"))
    assert {"ipv4_confirm", "iptable_filter_hook"} <= set(c.only_left())
    assert {"nf_confirm", "ipt_do_table"} <= set(c.only_right())
    dot = c.dot
    assert "cluster_a_side" in dot and "cluster_b_side" in dot
    assert re.search(r"a_h_LOCAL_IN_\d+ \[.*≠&#160;.*ipv4_confirm", dot)
    assert re.search(r"b_h_LOCAL_IN_\d+ \[.*≠&#160;.*nf_confirm", dot)
    # a hook only one kernel registers is "only here" (+), not renamed (≠)
    only = set(c.only_left()) - {"ipv4_confirm", "iptable_filter_hook"}
    for fn in only:
        assert re.search(rf"a_h_\w+ \[.*\+&#160;<b>{fn}</b>", dot), fn
        assert not re.search(rf"≠&#160;<b>{fn}</b>", dot), fn
    pc = observe.compare(IPT_DROP, NC, kernels=("5.10", "6.18"))
    assert "a_p0_s0" in pc.dot and "b_p0_s0" in pc.dot and "ipt_do_table" in pc.dot


def test_parse_nf_hooks_text_from_other_backends():
    text = ("🪝 ipv4 PRE_ROUTING\n       -200 → ipv4_conntrack_in\n\n🪝 ipv4 LOCAL_IN\n"
            " 2147483647 → nf_confirm, nft_do_chain_ipv4\n\n🪝 ipv6 LOCAL_IN\n 2147483646 → nf_confirm\n")
    chain = observe.parse_nf_hooks(text, kernel="6.18", backend="live")
    assert [c.function for c in chain.callbacks("LOCAL_IN")] == ["nf_confirm", "nft_do_chain_ipv4"]
    assert [c.kind for c in chain.callbacks("LOCAL_IN")] == ["conntrack", "nft"]
    assert "h_LOCAL_IN_0 -> h_LOCAL_IN_1" in chain.dot


def test_path_and_lifecycle_need_the_sim():
    class Fake:
        name = "live"
        k = None
    lab = Lab("sim")
    lab.backend = Fake()
    with pytest.raises(Exception, match="needs the sim backend"):
        observe.path(lab, NC)


@needs_dot
def test_svg_is_deterministic_and_repr_svg(trick):
    a = observe.hooks(trick).svg()
    b = observe.hooks(trick).svg()
    assert a == b and a.lstrip().startswith("<?xml") and "<svg" in a
    assert observe.hooks(trick)._repr_svg_() == a
    p = observe.path(trick, NC)
    s = p.svg()
    assert "dropped" in s and "nft_do_chain_ipv4" in s
    assert p.at(0).svg() != s  # the stepper's highlight changes the picture


@needs_dot
@pytest.mark.parametrize("what", ["hooks", "path", "lifecycle"])
def test_render_cli(tmp_path, what):
    from nfteach import render_cli

    script = tmp_path / "trick.lab"
    script.write_text(NFT_TRICK + NC + "\n")
    ap = argparse.ArgumentParser(prog="nfteach")
    render_cli.add_subcommands(ap.add_subparsers())
    out = tmp_path / f"{what}.svg"
    args = ap.parse_args(["render", what, "--kernel", "5.10", "--script", str(script), "-o", str(out)])
    assert args.func(args) == 0
    svg = out.read_text()
    assert "<svg" in svg
    dot = tmp_path / f"{what}.dot"
    args = ap.parse_args(["render", what, "--kernel", "5.10", "--script", str(script), "-o", str(dot)])
    assert args.func(args) == 0
    if what == "path":
        text = dot.read_text()
        assert "ipv4_confirm" in text and "nft_do_chain_ipv4" in text and "dropped" in text
    if what == "hooks":
        args = ap.parse_args(["render", "hooks", "--kernel", "5.10", "--compare", "6.18", "--script", str(script),
                              "-o", str(tmp_path / "cmp.dot")])
        assert args.func(args) == 0 and "nf_confirm" in (tmp_path / "cmp.dot").read_text()


def test_render_cli_errors(tmp_path, capsys):
    from nfteach import render_cli

    ap = argparse.ArgumentParser(prog="nfteach")
    render_cli.add_subcommands(ap.add_subparsers())
    args = ap.parse_args(["render", "path", "-o", str(tmp_path / "x.txt")])
    assert args.func(args) == 2
    args = ap.parse_args(["render", "path", "-o", str(tmp_path / "x.svg")])
    assert args.func(args) == 2
    assert "--command" in capsys.readouterr().err
