"""The article's sequence on the simulator, asserted step by step for each kernel profile."""
import re
from pathlib import Path

import pytest

from nfteach import Lab

ARTICLE = (Path(__file__).parents[2] / "nfteach/scenarios/article.lab").read_text()
CONFIRM = {"5.10": "ipv4_confirm", "6.1": "ipv4_confirm", "6.12": "nf_confirm", "6.18": "nf_confirm"}
FILTER = {"5.10": "iptable_filter_hook", "6.1": "ipt_do_table", "6.12": "ipt_do_table", "6.18": "ipt_do_table"}


def section(hooks_text: str, title: str) -> list:
    lines = hooks_text.split(f"🪝 {title}\n", 1)[1].split("\n\n", 1)[0]
    return lines.splitlines()


@pytest.fixture(scope="module", params=["5.10", "6.1", "6.12", "6.18"])
def run(request):
    with Lab("sim", kernel=request.param) as lab:
        t = lab.script(ARTICLE)
    steps = {}
    for r in t.results:
        steps.setdefault(r.command, []).append(r)
    return request.param, t, steps


def test_conntrack_empty_before_enable_hooks(run):
    kernel, t, steps = run
    first = steps["sudo conntrack -L"][0]
    assert first.status == 0 and first.output.endswith(": 0 flow entries have been shown.\n")


def test_session_established_and_assured_after(run):
    kernel, t, steps = run
    after = steps["sudo conntrack -L"][1].output
    assert re.search(r"^tcp      6 43199\d ESTABLISHED src=192\.168\.122\.1 dst=192\.168\.122\.204 sport=\d+ dport=22 "
                     r"src=192\.168\.122\.204 dst=192\.168\.122\.1 sport=22 dport=\d+ \[ASSURED\] mark=0 use=1$", after, re.M)


def test_no_entry_for_syn_dropped_in_filter_input(run):
    kernel, t, steps = run
    after_drop = steps["sudo conntrack -L"][2].output
    assert "dport=2570" not in after_drop
    assert after_drop.endswith(": 1 flow entries have been shown.\n")


def test_list_nf_hooks_with_iptables_legacy(run):
    kernel, t, steps = run
    hooks = steps["sudo list-nf-hooks"][0].output
    local_in = section(hooks, "ipv4 LOCAL_IN")
    assert f"          0 → {FILTER[kernel]}" in local_in
    assert local_in[-1] == f" 2147483647 → {CONFIRM[kernel]}"
    pre = section(hooks, "ipv4 PRE_ROUTING")
    assert pre[:2] == ["       -400 → ipv4_conntrack_defrag", "       -200 → ipv4_conntrack_in"]
    assert "INGRESS" not in hooks


def test_unconfirmed_table_is_empty(run):
    kernel, t, steps = run
    r = steps["sudo conntrack -L unconfirmed"][0]
    assert r.status == 0 and r.output.endswith(": 0 flow entries have been shown.\n")


def test_nft_chain_registered_before_conntrack_runs_after_confirm(run):
    kernel, t, steps = run
    hooks = steps["sudo list-nf-hooks"][1].output
    assert f" 2147483647 → {CONFIRM[kernel]}, nft_do_chain_ipv4" in section(hooks, "ipv4 LOCAL_IN")


def test_dropped_syn_is_now_in_the_table(run):
    kernel, t, steps = run
    last = steps["sudo conntrack -L"][-1].output
    assert re.search(r"^tcp      6 11\d SYN_SENT src=192\.168\.122\.1 dst=192\.168\.122\.204 sport=(\d+) dport=2570 "
                     r"\[UNREPLIED\] src=192\.168\.122\.204 dst=192\.168\.122\.1 sport=2570 dport=\1 mark=0 use=1$",
                     last, re.M)


def test_rule_counter_counts_the_dropped_syn(run):
    kernel, t, steps = run
    chain = steps["sudo nft list chain ip my_table my_input"][0].output
    assert "tcp dport 2570 counter packets 1 bytes 60 drop" in chain
    ruleset = steps["sudo nft -a list ruleset"][0].output
    assert "type filter hook input priority 2147483647; policy accept;" in ruleset


def test_every_step_succeeded_or_failed_like_the_real_tool(run):
    kernel, t, steps = run
    for r in t.results:
        assert "Traceback" not in r.output and "internal error" not in r.output, r
