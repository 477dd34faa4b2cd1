"""Notebook 10's table: every cell is read from the kernel's own transcript (sim profiles here;
the vm course run reads the real kernels)."""
from nfteach import course
from nfteach.kernel_changes import SCRIPT, Changes
from nfteach.lab import Lab


def test_table_from_running_sim_labs():
    with Lab("sim", kernel="5.10") as lab:
        runs = course.side_by_side(lab, SCRIPT)
    assert list(runs.runs) == list(course.kernels("sim"))
    c = course.what_changed(runs)
    assert isinstance(c, Changes)
    assert [c.value("confirm", k) for k in ("5.10", "6.1", "6.12")] == ["ipv4_confirm", "ipv4_confirm", "nf_confirm"]
    assert [c.value("filter", k) for k in ("5.10", "6.1", "6.12")] == ["iptable_filter_hook", "ipt_do_table",
                                                                       "ipt_do_table"]
    assert c.value("destroy", "5.10") == "destroy_conntrack" and c.value("destroy", "6.12") == "nf_ct_destroy"
    assert c.value("free_skb", "6.1") == "kfree_skb_reason" and c.value("free_skb", "6.12") == "sk_skb_reason_drop"
    assert c.value("unconfirmed_fns", "6.12") == "none" and "unconfirmed" in c.value("unconfirmed_fns", "5.10")
    assert c.value("free_skb", "6.18") == "no kprobes here"  # this machine's 6.18 has no kprobes
    assert all(c.value("unconfirmed_dump", k) == "succeeds, 0 entries" for k in runs.runs)
    assert c.changed("confirm") and not c.changed("unconfirmed_dump")
    assert "<table>" in c._repr_html_() and "nf_confirm" in str(c)


def test_a_transcript_without_the_answers_gives_dashes():
    with Lab("sim", kernel="6.12") as lab:
        t = lab.script("sudo conntrack -L")
    c = Changes({"6.12": t})
    assert c.value("confirm", "6.12") == "—" and c.value("unconfirmed_dump", "6.12") == "—"
