"""Random but meaningful lab scripts (3–15 lines) over the command surface the lab supports.

``script(rng, backend)`` returns a list of lab command lines. "Meaningful": the generator
keeps a little state (modules loaded, nft tables/chains, iptables rules per tool and table,
a background job) so that most lines act on something that exists — a rule that is
deleted was added, a chain that gets a rule was created, every background job is ended by
``kill -INT %1`` in the same script — while a few lines still hit the error paths (a rule
in a table that does not exist, a module in use, a target that a table does not allow).

Traffic keeps to what every backend can run without touching the session: drops and
rejects only ever match ports 2570/2571 (the closed ports), never tcp/22; a dropped port is
probed with ``nc -w 2`` (clear of the 1 s SYN retransmission, see scenarios/nft-counters.lab).

The same seed gives the same scripts (``random.Random(seed)``), on every machine.
"""
from __future__ import annotations

import random
from typing import Dict, List, Optional, Set, Tuple

VM = "192.168.122.204"
PORTS = (2570, 2571)
INT32 = (-2147483648, 2147483647)
TOOLS = ("iptables", "iptables-legacy", "iptables-nft")
CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}
NFT_HOOKS = ("prerouting", "input", "output")
NFT_PRIOS = (0, -400, -300, -200, -150, -100, 10, 100, 300) + INT32
CT_STATES = ("NEW", "ESTABLISHED", "RELATED,ESTABLISHED", "INVALID", "UNTRACKED")
SYSCTL_READ = ("net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_count",
               "net.netfilter.nf_conntrack_buckets", "net.netfilter.nf_conntrack_tcp_loose",
               "net.netfilter.nf_conntrack_tcp_timeout_syn_sent",
               "net.netfilter.nf_conntrack_tcp_timeout_established")
#: hook functions whose second argument is the skb (their names differ per kernel: a probe on
#: a function a kernel lacks is one more thing to compare)
CT_FUNCS = ("ipv4_conntrack_defrag", "ipv4_conntrack_in", "ipv4_confirm", "nf_confirm")
#: the SYN's destination port as bpftrace reads the big-endian field on x86
PORT_BE = {2570: "0x0a0a", 2571: "0x0b0a"}
_SKB = ("$skb = (struct sk_buff *)arg1; $th = (struct tcphdr *)($skb->head + $skb->transport_header); "
        "if ($th->dest == {port}) {{ ")
# every probe filters on the lab's port: on `live` a probe sees the whole machine's traffic
BPFTRACE = (
    "kprobe:{f} {{ " + _SKB + "@[func] = count(); }} }}",
    "kprobe:{f} {{ " + _SKB + "@calls = count(); }} }}",
    "kprobe:{f} {{ " + _SKB + 'printf("%s syn %d\\n", func, $th->syn); }} }}',
    "tracepoint:skb:kfree_skb {{ $skb = (struct sk_buff *)args->skbaddr; "
    "$th = (struct tcphdr *)($skb->head + $skb->transport_header); "
    "if ($th->dest == {port}) {{ @drops = count(); }} }}",
)


class _State:
    def __init__(self) -> None:
        self.ct_loaded = False
        self.nft: Dict[str, Set[str]] = {}          # table -> chains
        self.nft_chain_hook: Dict[Tuple[str, str], str] = {}
        self.rules: Dict[Tuple[str, str], List[Tuple[str, str]]] = {}  # (tool, table) -> (chain, spec)
        self.user_chains: Dict[Tuple[str, str], Set[str]] = {}
        self.dropped: Set[int] = set()
        self.job = False
        self.tracing = False
        self.pending: List[str] = []  # lines that must follow the last one


def _ipt_family(tool: str) -> str:
    return "legacy" if tool == "iptables-legacy" else "nft"  # `iptables` is iptables-nft on Debian


def _module(rng, st: _State) -> str:
    r = rng.random()
    if r < 0.45:
        st.ct_loaded = True
        return "sudo modprobe nf_conntrack enable_hooks=1"
    if r < 0.6:
        st.ct_loaded = True
        return "sudo modprobe nf_conntrack"
    if r < 0.8:
        return f"sudo rmmod {rng.choice(('nf_conntrack', 'iptable_filter', 'iptable_raw', 'nft_ct', 'nf_tables'))}"
    return f"sudo modprobe {rng.choice(('iptable_raw', 'iptable_filter', 'nf_tables', 'nft_ct', 'xt_conntrack'))}"


def _match(rng, table: str, chain: str) -> Tuple[str, Optional[int]]:
    proto = rng.choice(("tcp", "tcp", "udp"))
    port = rng.choice(PORTS)
    direction = "--sport" if chain in ("OUTPUT", "POSTROUTING") else "--dport"
    parts = [f"-p {proto} {direction} {port}"]
    if rng.random() < 0.3:
        parts.append(f"-m conntrack --ctstate {rng.choice(CT_STATES)}")
    return " ".join(parts), (port if direction == "--dport" and proto == "tcp" else None)


def _target(rng, table: str) -> str:
    if table == "raw":
        return rng.choice(("NOTRACK", "CT --notrack", "ACCEPT", "DROP", "LOG --log-prefix fid:"))
    if table == "nat":
        return rng.choice(("ACCEPT", "ACCEPT", "DROP", "LOG --log-prefix fid:"))
    if table == "mangle":
        return rng.choice(("ACCEPT", "DROP", "LOG --log-prefix fid:"))
    return rng.choice(("ACCEPT", "DROP", "DROP", "REJECT", "LOG --log-prefix fid:"))


def _iptables(rng, st: _State) -> str:
    tool = rng.choice(TOOLS)
    table = rng.choice(("filter", "filter", "raw", "mangle", "nat"))
    key = (tool, table)
    t = "" if table == "filter" and rng.random() < 0.5 else f"-t {table} "
    chains = CHAINS[table]
    rules = st.rules.setdefault(key, [])
    r = rng.random()
    if r < 0.45:
        chain = rng.choice(chains)
        spec, port = _match(rng, table, chain)
        target = _target(rng, table)
        spec = f"{spec} -j {target}"
        rules.append((chain, spec))
        if port is not None and target in ("DROP",) and table != "nat":
            st.dropped.add(port)
        op = "-A" if rng.random() < 0.7 else "-I"
        return f"sudo {tool} {t}{op} {chain} {spec}"
    if r < 0.55 and rules:
        chain, spec = rules.pop(rng.randrange(len(rules)))
        return f"sudo {tool} {t}-D {chain} {spec}"
    if r < 0.7:
        opts = rng.choice(("-L -n", "-L -n -v", "-S", "-L -n --line-numbers"))
        chain = f" {rng.choice(chains)}" if rng.random() < 0.5 else ""
        return f"sudo {tool} {t}{opts}{chain}"
    if r < 0.78:
        chain = f" {rng.choice(chains)}" if rng.random() < 0.5 else ""
        if not chain:
            rules.clear()
        return f"sudo {tool} {t}-F{chain}"
    if r < 0.86:
        chain = rng.choice([c for c in chains if c != "INPUT" or table != "filter"] or chains)
        policy = "DROP" if chain == "FORWARD" and rng.random() < 0.5 else "ACCEPT"
        return f"sudo {tool} {t}-P {chain} {policy}"
    user = st.user_chains.setdefault(key, set())
    if user and rng.random() < 0.5:
        name = user.pop()
        return f"sudo {tool} {t}-X {name}"
    name = rng.choice(("FID", "MYCHAIN"))
    user.add(name)
    return f"sudo {tool} {t}-N {name}"


def _nft(rng, st: _State) -> str:
    r = rng.random()
    if not st.nft or r < 0.12:
        name = rng.choice(("t", "t", "fid"))
        st.nft.setdefault(name, set())
        return f"sudo nft add table ip {name}"
    table = rng.choice(sorted(st.nft))
    chains = st.nft[table]
    if not chains or r < 0.3:
        chain = rng.choice(("c1", "c2", "c3"))
        hook = rng.choice(NFT_HOOKS)
        prio = rng.choice(NFT_PRIOS)
        chains.add(chain)
        st.nft_chain_hook[(table, chain)] = hook
        return f"sudo nft add chain ip {table} {chain} {{ type filter hook {hook} priority {prio} \\; }}"
    chain = rng.choice(sorted(chains))
    hook = st.nft_chain_hook.get((table, chain), "input")
    if r < 0.6:
        port = rng.choice(PORTS)
        key = "sport" if hook == "output" else "dport"
        rule = rng.choice((
            f"tcp {key} {port} counter drop",
            f"tcp {key} {port} counter accept",
            f"udp {key} {port} counter drop",
            "ct state new counter",
            "ct state established,related counter accept",
            f"ct state invalid,untracked tcp {key} {port} counter",
            f"tcp {key} {port} notrack",
            "counter",
            f"tcp {key} 22 counter",
        ))
        if rule.startswith("tcp dport") and rule.endswith("drop"):
            st.dropped.add(port)
        verb = "add" if rng.random() < 0.8 else "insert"
        return f"sudo nft {verb} rule ip {table} {chain} {rule}"
    if r < 0.8:
        return rng.choice(("sudo nft list ruleset", "sudo nft -a list ruleset", f"sudo nft list chain ip {table} {chain}",
                           "sudo nft list tables", f"sudo nft list table ip {table}"))
    if r < 0.87:
        return f"sudo nft flush chain ip {table} {chain}"
    if r < 0.93:
        chains.discard(chain)
        return f"sudo nft delete chain ip {table} {chain}"
    if rng.random() < 0.5:
        st.nft.pop(table)
        return f"sudo nft delete table ip {table}"
    st.nft.clear()
    return "sudo nft flush ruleset"


def _nc(rng, st: _State) -> str:
    r = rng.random()
    if r < 0.3:
        return f"@host nc -w 1 -z {VM} 22"
    if r < 0.55 or not st.dropped:
        return f"@host nc -w 1 -z {VM} {rng.choice(PORTS)}" if r < 0.85 else f"@host nc -v -w 1 -z {VM} {rng.choice(PORTS)}"
    if r < 0.9:
        return f"@host nc -w 2 -z {VM} {rng.choice(sorted(st.dropped))}"
    return f"@host nc -u -w 1 -z {VM} {rng.choice(PORTS)}"


def _conntrack(rng, st: _State) -> str:
    return "sudo conntrack " + rng.choice((
        "-L", "-L", "-L -p tcp --dport 2570", "-L -p tcp --state ESTABLISHED", "-L -p tcp --dport 22",
        "-L -s 192.168.122.1", "-L -p udp", "-F", "-C", "-S", "-D -p tcp --dport 2570",
        "-D -p tcp --dport 2571", "-L unconfirmed", "-L dying",
    ))


def _sysctl(rng, st: _State) -> str:
    if rng.random() < 0.25:
        return f"sudo sysctl -w net.netfilter.nf_conntrack_tcp_loose={rng.choice((0, 1))}"
    return f"sudo sysctl {rng.choice(SYSCTL_READ)}"


def _job(rng, st: _State) -> str:
    if st.job:
        st.job = False
        return "kill -INT %1"
    if st.tracing:
        st.tracing = False
        return rng.choice(("sudo trace-cmd stop", "sudo trace-cmd stop"))
    if rng.random() < 0.75:
        st.job = True
        prog = rng.choice(BPFTRACE).format(f=rng.choice(CT_FUNCS), port=PORT_BE[rng.choice(PORTS)])
        # bpftrace prints "Attaching..." before its probes are attached: a real kernel under
        # TCG can miss the next packets (a real race, like scenarios/trace-*.lab avoid)
        st.pending.append("sleep 2")
        return f"sudo bpftrace -e '{prog}' &"
    st.tracing = True
    return f"sudo trace-cmd start -p function_graph -g {rng.choice(CT_FUNCS[:4])}"


def _observe(rng, st: _State, backend: str) -> str:
    choices = ["sudo list-nf-hooks", "lsmod", "lsmod | grep nf_", "lsmod | grep conntrack"]
    if backend != "live":  # the live backend's kernel log is the whole machine's
        # the kernel's netfilter messages; the guest's boot log ("hash table entries") is not the lab's
        choices.append("sudo dmesg | grep -i -e nf_ -e conntrack -e netfilter -e x_tables")
    return rng.choice(choices)


KINDS = ((_module, 2), (_iptables, 5), (_nft, 5), (_nc, 4), (_conntrack, 4), (_sysctl, 1), (_job, 1))


def script(rng: random.Random, backend: str = "vm") -> List[str]:
    """One random script of 3–15 lines (more if a background job must still be ended)."""
    st = _State()
    n = rng.randint(3, 15)
    lines: List[str] = []
    if rng.random() < 0.7:
        lines.append(_module(rng, st) if rng.random() < 0.3 else "sudo modprobe nf_conntrack enable_hooks=1")
        st.ct_loaded = st.ct_loaded or lines[-1].startswith("sudo modprobe nf_conntrack")
    funcs = [f for f, w in KINDS for _ in range(w)]
    while len(lines) < n:
        if rng.random() < 0.15:
            lines.append(_observe(rng, st, backend))
            continue
        f = rng.choice(funcs)
        lines.append(f(rng, st))
        lines.extend(st.pending)
        st.pending.clear()
    if st.job:
        lines.append("kill -INT %1")
    if st.tracing:
        lines.append("sudo trace-cmd stop")
        lines.append("sudo cat /sys/kernel/debug/tracing/trace")
    return lines


def scripts(seed: int, count: int, backend: str = "vm") -> List[List[str]]:
    rng = random.Random(seed)
    return [script(rng, backend) for _ in range(count)]
