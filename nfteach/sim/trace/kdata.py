"""What a trace on the simulator needs from the kernel profile, and the kernel stack.

Profile tables (``nfteach/model/profiles/*.toml``, all under ``[trace...]``):

* ``[trace]`` flags: ``function_graph``, ``kprobes``, ``kprobe_offset`` (``+1`` of a kprobe
  frame), ``tracefs``, ``bpftrace_preamble``, ``kprobe_missing`` (what bpftrace prints for a
  function this kernel does not have), ``absent`` (functions this kernel does not have),
  ``uncalled`` (calls the model makes that this kernel does not make on these paths; a
  ``"caller>callee"`` entry: only from that caller). Nothing
  under an absent or uncalled function leaves a trace either (it does not run on this kernel).
  ``unix_connect_prealloc_skb``: ``unix_stream_connect`` allocates the peer's skb before the
  lookup and frees it when the connect fails.
* ``[trace.symbols]`` model function -> kernel symbol (``init_conntrack.constprop.0``).
* ``[trace.modules]`` kernel symbol -> module (``[nf_conntrack]`` in function_graph).
* ``[trace.hidden]`` ``functions``: modelled functions no trace shows on this kernel
  (function_graph, kprobes and stacks): no out-of-line copy, inlined into the caller the
  model calls them from, or notrace; a ``"caller>callee"`` entry: hidden at that call only
  (6.12 inlines nf_ct_acct_add into nf_ct_kill_acct, not into __nf_ct_refresh_acct).
  ``why``: the reason of each. Derived by ``nfteach vm derive`` (``K.derived.toml``).
* ``[trace.kstack]`` ``skip`` (frames a stack does not show: tail calls), ``offsets``
  (``"caller>callee" = return-address offset``), ``tracepoint_sites`` (top frame(s) of a
  tracepoint: 5.10's bpftrace shows the site twice), ``rx`` (frames below the receive path),
  ``tx.<cause>`` (below those: who ran the receive softirq for that sender) and
  ``below`` (``"frame@cause"`` or ``"frame"``: the unmodelled callers under the lowest
  modelled frame, e.g. the syscall under ``unix_stream_connect``), all as captured.
* ``[trace.tracepoints.<name>]`` fields of a tracepoint, ``[trace.drop_reasons]``.
* ``[trace.costs]`` nanoseconds per function for function_graph durations (model clock).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from .state import CAUSES

#: function_graph cost of a function itself (ns, model clock), unless the profile says otherwise.
DEFAULT_COST_NS = 180
COSTS_NS = {
    "ipv4_conntrack_defrag": 240, "ipv4_conntrack_in": 310, "nf_conntrack_in": 420, "get_l4proto": 160,
    "nf_ct_get_tuple": 230, "nf_ct_get_tuple_ports": 150, "hash_conntrack_raw": 290,
    "__nf_conntrack_find_get": 340, "init_conntrack": 520, "nf_ct_invert_tuple": 140,
    "__nf_conntrack_alloc": 1350, "nf_ct_add_to_unconfirmed_list": 210, "nf_conntrack_tcp_packet": 880,
    "nf_conntrack_handle_packet": 120, "ipv4_confirm": 260, "__nf_conntrack_confirm": 940,
    "nf_hook_slow": 200, "kfree_skb": 380, "kfree_skb_reason": 380, "skb_release_head_state": 160,
    "nf_conntrack_destroy": 120, "destroy_conntrack": 450, "nf_ct_destroy": 450,
    "nf_ct_del_from_dying_or_unconfirmed_list": 190, "nf_conntrack_free": 610, "ipv4_conntrack_local": 300,
}
ENTRY_NS = 60  # tracer overhead between a function's entry and its first child

#: kprobe argument lists (arg0, arg1, ...) of the kernel functions the model runs
SIGNATURES = {
    "ip_rcv": ("skb", "dev", "pt", "orig_dev"), "ip_rcv_finish": ("net", "sk", "skb"),
    "ip_local_deliver": ("skb",), "ip_local_deliver_finish": ("net", "sk", "skb"),
    "nf_hook_slow": ("skb", "state", "e", "s"), "kfree_skb": ("skb",), "kfree_skb_reason": ("skb", "reason"),
    "consume_skb": ("skb",), "skb_release_head_state": ("skb",), "nf_conntrack_in": ("skb", "state"),
    "nf_conntrack_destroy": ("ct",), "destroy_conntrack": ("ct",), "nf_ct_destroy": ("ct",),
    "nf_ct_del_from_dying_or_unconfirmed_list": ("ct",), "nf_ct_add_to_unconfirmed_list": ("ct",),
    "tcp_v4_rcv": ("skb",), "__ip_local_out": ("net", "sk", "skb"), "ip_output": ("net", "sk", "skb"),
    "__dev_queue_xmit": ("skb", "sb_dev"), "nf_conntrack_free": ("ct",), "nf_ct_delete": ("ct", "portid", "report"),
    "__nf_conntrack_confirm": ("skb",), "tcp_v4_send_reset": ("sk", "skb"), "nf_ct_kill_acct": ("ct", "ctinfo", "skb"),
}
HOOK_SIGNATURE = ("priv", "skb", "state")


class KData:
    """The ``[trace]`` data of one kernel profile."""

    def __init__(self, profile):
        self.profile = profile
        t = profile.extra.get("trace", {})
        self.t = t
        self.symbols: Dict[str, str] = dict(t.get("symbols", {}))
        #: (model caller, model callee) -> the clone that caller calls (5.10's nf_ct_kill_acct
        #: calls nf_ct_delete.part.0, other callers nf_ct_delete): [trace.symbols_at], derived
        self.symbols_at: Dict[Tuple[str, str], str] = {
            tuple(k.split(">", 1)): v for k, v in t.get("symbols_at", {}).items()}
        self.modules: Dict[str, str] = dict(t.get("modules", {}))
        hidden = t.get("hidden", {}).get("functions", [])
        self.hidden = {f for f in hidden if ">" not in f}
        #: (model caller, model callee): a call that leaves no trace (the callee is inlined there)
        self.hidden_calls = {tuple(f.split(">", 1)) for f in hidden if ">" in f}
        self.absent = set(t.get("absent", []))
        self.uncalled = set(t.get("uncalled", []))
        self.cut = frozenset(self.absent | self.uncalled)
        ks = t.get("kstack", {})
        self.skip = set(ks.get("skip", []))
        self.offsets: Dict[str, int] = dict(ks.get("offsets", {}))
        self.tp_sites: Dict[str, object] = dict(ks.get("tracepoint_sites", {}))
        self.below: Dict[str, List[str]] = {k: list(v) for k, v in ks.get("below", {}).items()}
        self.rx: List[str] = list(ks.get("rx", []))
        self.tx: Dict[str, List[str]] = {k: list(v) for k, v in ks.get("tx", {}).items()}
        self.tracepoints: Dict[str, Dict[str, str]] = dict(t.get("tracepoints", {}))
        self.drop_reasons: Dict[str, int] = dict(t.get("drop_reasons", {}))
        self.costs: Dict[str, int] = {**COSTS_NS, **t.get("costs", {})}
        self.function_graph: bool = bool(t.get("function_graph", True))
        self.kprobes: bool = bool(t.get("kprobes", True))
        self.kprobe_offset: int = int(t.get("kprobe_offset", 1))
        self.tracefs: str = t.get("tracefs", "/sys/kernel/tracing")
        self.preamble: str = t.get("bpftrace_preamble", "")
        self.kprobe_missing: List[str] = list(t.get("kprobe_missing", []))

    # names -------------------------------------------------------------------------------
    def symbol(self, model_name: str) -> Optional[str]:
        """The kernel symbol of a modelled function, None if this kernel has none (inlined/absent)."""
        if model_name in self.hidden or model_name in self.absent:
            return None
        return self.symbols.get(model_name, model_name)

    def symbol_in(self, model_stack: Sequence[str]) -> Optional[str]:
        """The symbol of the innermost call of ``model_stack`` where it is called from there."""
        sym = self.symbol(model_stack[-1])
        if sym is not None and self.symbols_at and len(model_stack) > 1:
            return self.symbols_at.get((model_stack[-2], model_stack[-1]), sym)
        return sym

    def hidden_at(self, model_stack: Sequence[str]) -> bool:
        """True when the innermost call of ``model_stack`` leaves no trace (``"caller>callee"``)."""
        return len(model_stack) > 1 and (model_stack[-2], model_stack[-1]) in self.hidden_calls

    def runs(self, model_stack: Sequence[str]) -> bool:
        """False when a frame of ``model_stack`` is a call this kernel does not make."""
        cut = self.cut
        if not cut:
            return True
        if any(f in cut for f in model_stack):
            return False
        # "caller>callee": a call this kernel does not make from that caller only
        return not any(f"{a}>{b}" in cut for a, b in zip(model_stack, model_stack[1:]))

    def model_name(self, symbol: str) -> str:
        for m, s in self.symbols.items():
            if s == symbol:
                return m
        return symbol

    def module(self, symbol: str) -> str:
        return self.modules.get(symbol, "") if self.profile.modules else ""

    def cost(self, model_name: str) -> int:
        return int(self.costs.get(model_name, DEFAULT_COST_NS))

    # stacks ------------------------------------------------------------------------------
    def frames(self, model_stack: Sequence[str], top, cause: Optional[Tuple[str, ...]]) -> Tuple[str, ...]:
        """Kernel stack (innermost first) for a probe that fired at ``model_stack[-1]``.

        ``top`` is the first frame (``func+1`` for a kprobe, the tracepoint's site: a frame or
        a list of frames). Below the modelled frames come the receive softirq frames (``rx``)
        and the frames of whoever ran it for the packet's ``cause`` (``tx.<cause>``), or the
        unmodelled callers of the lowest modelled frame (``below``), as captured on the real kernel.
        """
        syms = [s for i, s in enumerate(self.symbol_in(model_stack[:i + 1]) for i in range(len(model_stack)))
                if s is not None and not (i and (model_stack[i - 1], model_stack[i]) in self.hidden_calls)]
        out = [top] if isinstance(top, str) else list(top)
        callee = syms[-1] if syms else ""
        for caller in reversed(syms[:-1]):
            if caller in self.skip:
                continue
            off = self.offsets.get(f"{caller}>{callee}")
            if off is None:
                break  # not captured on this kernel: stop rather than invent an offset
            out.append(f"{caller}+{off}")
            callee = caller
        else:
            if model_stack and model_stack[0] == "ip_rcv" and self.rx and out[-1].split("+")[0] == self._rx_top():
                out.extend(self.rx)
                if cause:
                    out.extend(self.tx.get(cause[0], []))
                return tuple(out)
        # the lowest frame shown is `callee`: what called it is not modelled (the syscall, the
        # sender's stack under ip_output), so the captured frames follow, if any
        if self.below:
            here = next((m for m in model_stack if m in CAUSES), "")
            out.extend(self.below.get(f"{callee}@{here}", self.below.get(callee, [])))
        return tuple(out)

    def _rx_top(self) -> str:
        """The modelled frame that sits right on the receive softirq frames (ip_local_deliver)."""
        return self.t.get("kstack", {}).get("rx_on", "ip_local_deliver")
