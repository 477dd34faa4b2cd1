"""drgn on the simulator: a real drgn.Program with the kernel's layouts (issue 5)."""
import re
from pathlib import Path

import pytest

drgn = pytest.importorskip("drgn", reason="drgn is not installed (pip install drgn)")

from nfteach import Lab  # noqa: E402
from nfteach.introspect import conntrack as ct_walk  # noqa: E402
from nfteach.introspect import hooks, program  # noqa: E402
from nfteach.introspect.layouts import len_of  # noqa: E402
from nfteach.model.profile import load_profile  # noqa: E402

KERNELS = ("5.10", "6.1", "6.12", "6.18")
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ARTICLE = ["sudo modprobe nf_conntrack enable_hooks=1",
           "sudo iptables-legacy -t filter -A INPUT -p tcp --dport 2570 -j DROP"]
ADDR = re.compile(r"= 0x(ffffffff[0-9a-f]{8})$")


def lab_after(kernel, lines=ARTICLE):
    lab = Lab("sim", kernel=kernel).start()
    for line in lines:
        if kernel == "6.18" and "modprobe" in line:
            continue  # built in: no module to load
        lab.run(line)
    return lab


@pytest.fixture(params=KERNELS)
def kernel(request):
    return request.param


def test_article_repl_lines(kernel):
    """`prog['init_net'].nf.hooks_ipv4[0]` ... `.hooks[i].hook` as the article prints it."""
    lab = lab_after("5.10" if kernel == "6.18" else kernel)
    prog = program(lab)
    pre_routing_hook = prog['init_net'].nf.hooks_ipv4[0]
    lines = [str(pre_routing_hook.hooks[i].hook) for i in range(0, pre_routing_hook.num_hook_entries)]
    assert [ln.split("+")[0] for ln in lines] == ["(nf_hookfn *)ipv4_conntrack_defrag", "(nf_hookfn *)ipv4_conntrack_in"]
    for ln in lines:
        assert "+0x0 = 0xffffffffc0" in ln, ln  # module functions in the module area


def test_builtin_hooks_in_kernel_text_on_6_18():
    lab = Lab("sim", kernel="6.18").start()
    lab.run("sudo nft add table inet t")
    lab.run("sudo nft add chain inet t c { type filter hook input priority 0 \\; }")
    lab.run("sudo nft add rule inet t c ct state new counter")
    prog = program(lab)
    seen = {}
    for tbl in hooks.netns_nf_hooks(prog).values():
        for entries in tbl.values():
            for _prio, name in entries:
                seen[name] = prog.symbol(name).address
    assert "ipv4_conntrack_in" in seen and "nf_confirm" in seen
    assert all(0xFFFFFFFF81000000 <= a < 0xFFFFFFFFC0000000 for a in seen.values()), seen


def test_every_hook_function_has_a_symbol(kernel):
    lab = lab_after("6.1" if kernel == "6.18" else kernel)
    prog = program(lab)
    for net in hooks.for_each_net(prog):
        for pf in ("hooks_ipv4", "hooks_ipv6"):
            for h in range(5):
                for ops in hooks.nf_hook_entries_for_each(prog, getattr(net.nf, pf)[h]):
                    sym = prog.symbol(ops.hook)
                    assert sym.address == ops.hook.value_() and sym.kind == drgn.SymbolKind.FUNC


def test_objects_types_and_enum(kernel):
    prog = program(Lab("sim", kernel=kernel).start())
    t = prog.type("enum nf_inet_hooks")
    values = dict((e.name, e.value) for e in t.enumerators)
    assert values["NF_INET_INGRESS"] == values["NF_INET_NUMHOOKS"] == 5
    assert prog["init_net"].type_.type_name() == "struct net"
    assert prog["NF_INET_LOCAL_IN"].value_() == 1
    lay = load_profile(kernel).extra["layout"]["types"]
    assert prog.type("struct nf_hook_ops").size == lay["struct nf_hook_ops"]["size"]
    assert drgn.offsetof(prog.type("struct net"), "nf.hooks_ipv6") == \
        drgn.offsetof(prog.type("struct net"), "nf.hooks_ipv4") + 5 * 8  # adjacent: the INGRESS bug


def test_host_namespace_reachable(kernel):
    lab = Lab("sim", kernel=kernel).start()
    prog = program(lab)
    k = lab.backend.k
    inums = [n.ns.inum.value_() for n in hooks.for_each_net(prog)]
    assert inums == [k.namespaces["init_net"].inum, k.namespaces["host"].inum]
    assert prog["net_namespace_list"].next.value_() == prog["init_net"].list.address_of_().value_()


def test_program_follows_the_model():
    lab = Lab("sim", kernel="5.10").start()
    prog = program(lab)
    assert not prog["init_net"].nf.hooks_ipv4[1]
    lab.run("sudo modprobe nf_conntrack enable_hooks=1")
    assert prog["init_net"].nf.hooks_ipv4[1].num_hook_entries == 1
    lab.run("sudo nft add table ip t")
    lab.run("sudo nft add chain ip t c { type filter hook input priority 2147483647 \\; }")
    names = [n for _p, n in hooks.netns_nf_hooks(prog)["ipv4"]["LOCAL_IN"]]
    assert names == ["nft_do_chain_ipv4", "ipv4_confirm"]


def _sim_list_nf_hooks(kernel, lines):
    lab = Lab("sim", kernel=kernel).start()
    for line in lines:
        lab.run(line)
    r = lab.run("sudo drgn -q /vagrant/tools/list-nf-hooks.py")
    assert r.status == 0, r.output
    return r.output


def test_article_script_ingress_bug(kernel):
    """The article's script, run by `drgn SCRIPT`: "ipv4 INGRESS" is hooks_ipv6[0]."""
    lines = ARTICLE if kernel != "6.18" else [
        "sudo nft add table inet t", "sudo nft add chain inet t c { type filter hook input priority 0 \\; }",
        "sudo nft add rule inet t c ct state new counter"]
    out = _sim_list_nf_hooks(kernel, lines)
    sections = out.split("\n\n")
    heads = [s.split("\n")[0] for s in sections if s]
    assert heads == [f"🪝 {f} {h}" for f in ("ipv4", "ipv6")
                     for h in ("PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT", "POST_ROUTING", "INGRESS")]
    ingress4 = sections[5].split("\n")[1:]
    pre6 = sections[6].split("\n")[1:]
    assert ingress4 == pre6 and pre6  # read past hooks_ipv4[] into hooks_ipv6[0]
    assert sections[11] == "🪝 ipv6 INGRESS"  # hooks_arp[0]: NULL
    # and the rest is what the project's own walker prints
    assert hooks.format_hooks(hooks.netns_nf_hooks(program(Lab("sim", kernel=kernel).start()))) != ""


@pytest.mark.parametrize("kernel", ["5.10", "6.1", "6.12"])
def test_article_script_matches_real_kernel_sections(kernel):
    """Section for section, the vm helper's captured list (tests/golden or its notes)."""
    golden = GOLDEN / kernel / "drgn.txt"
    if not golden.exists():
        pytest.skip(f"no golden {golden.relative_to(GOLDEN.parent)} yet (vm capture of scenarios/drgn.lab)")
    text = golden.read_text()
    real = text[text.index("🪝 ipv4 PRE_ROUTING"):]
    real = real[:real.index("🪝 ipv6 INGRESS") + len("🪝 ipv6 INGRESS\n\n")]
    sim = _sim_list_nf_hooks(kernel, ARTICLE)
    assert sim == real


def test_drgn_command_forms():
    lab = lab_after("5.10")
    r = lab.run("""sudo drgn -e 'print(prog["init_net"].nf.hooks_ipv4[1].num_hook_entries)'""")
    assert (r.output, r.status) == ("(u16)2\n", 0)  # drgn prints the Object
    r = lab.run("sudo drgn -q -e 'prog[\"no_such_symbol\"]'")
    assert r.status == 1 and r.output.startswith("Traceback") and "could not find" in r.output
    r = lab.run("sudo drgn /vagrant/tools/nosuch.py")
    assert r.status == 1 and "No such file" in r.output
    r = lab.run("sudo drgn --bogus")
    assert r.status == 2 and r.output.count("\n") == 1 and "--bogus" in r.output
    r = lab.run("sudo drgn")
    assert r.status == 2 and r.output.count("\n") == 1


def test_conntrack_walker_equals_conntrack_L(kernel):
    lines = ["sudo nft add table ip t", "sudo nft add chain ip t c { type filter hook input priority 2147483647 \\; }",
             "sudo nft add rule ip t c tcp dport 2570 counter drop", "sudo nft add rule ip t c ct state new counter"]
    if kernel != "6.18":
        lines.insert(3, "sudo modprobe nf_conntrack enable_hooks=1")
    lab = lab_after(kernel, lines)
    lab.run("@host nc -w 1 -z 192.168.122.204 2570")
    lab.run("@host nc -w 1 -z 192.168.122.204 22")
    listed = [ln for ln in lab.run("sudo conntrack -L").output.splitlines() if ln.startswith("tcp")]
    prog = program(lab)
    walked = [ct_walk.format_conntrack(ct_walk.nf_conn_entry(prog, c))
              for c in ct_walk.nf_conntrack_hash_for_each(prog, prog["init_net"].address_of_())]
    assert len(listed) >= 2
    assert walked == listed
    # every namespace's entries are on the one table; host's own are there too
    assert len(list(ct_walk.nf_conntrack_hash_for_each(prog))) >= len(walked)


def test_unconfirmed_lists_on_5_10_only():
    for kernel in ("5.10", "6.1", "6.12"):
        lab = lab_after(kernel)
        prog = program(lab)
        k = lab.backend.k
        net = k.namespaces["init_net"]
        # hold an entry on the unconfirmed list, as an skb in flight would
        ct = k.conntrack.init_conntrack(net, __import__("nfteach.sim.kernel.conntrack", fromlist=["CtTuple"]).CtTuple(
            "192.168.122.1", "192.168.122.204", 6, 40000, 2570), _Syn())
        got = list(ct_walk.nf_ct_unconfirmed_for_each(prog, prog["init_net"].address_of_()))
        if kernel == "5.10":
            assert len(got) == 1 and ct_walk.nf_conn_entry(prog, got[0]).orig[3] == 2570
        else:
            assert got == []
        k.conntrack.nf_ct_put(ct)


class _Syn:
    protocol, len, saddr, daddr, sport, dport = 6, 60, "192.168.122.1", "192.168.122.204", 40000, 2570
    syn, ack, fin, rst = True, False, False, False
    seq, ack_seq, window, data_len, flags = 1, 0, 64240, 0, 0x02


def test_layout_tables_complete(kernel):
    lay = load_profile(kernel).extra["layout"]
    for name in ("struct nf_hook_ops", "struct nf_hook_entries", "struct netns_nf", "struct net", "struct nf_conn"):
        assert name in lay["types"], name
    assert len_of(lay["objects"]["__per_cpu_offset"]) in (256, 8192)


def test_no_drgn_one_line(monkeypatch):
    import builtins

    import nfteach.introspect as intro
    from nfteach.model.errors import BackendUnavailable

    real_import = builtins.__import__

    def fake(name, *a, **kw):
        if name == "drgn" or name.startswith("drgn."):
            raise ImportError("No module named 'drgn'")
        return real_import(name, *a, **kw)

    lab = Lab("sim").start()
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(BackendUnavailable) as e:
        intro.program(lab)
    assert "\n" not in str(e.value) and "drgn" in str(e.value)
    r = lab.run("sudo drgn -e 'print(1)'")
    assert r.status == 2 and r.output.count("\n") == 1 and "drgn" in r.output
    assert lab.run("sudo conntrack -L").status == 0  # everything else works
