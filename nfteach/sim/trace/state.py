"""Per-kernel tracing state: tracefs settings, running bpftrace sessions, task context.

Kept on the :class:`~nfteach.sim.kernel.Kernel` object (``kernel._trace``) so the model's
own classes need nothing from this package.
"""
from __future__ import annotations

import zlib
from typing import Dict, List, Optional, Tuple

#: functions the model reports through its tracer (nfteach/sim/stack.py, conntrack.py)
MODEL_FUNCTIONS = {
    "ip_rcv", "ip_rcv_finish", "ip_local_deliver", "ip_local_deliver_finish", "nf_hook_slow",
    "skb_release_head_state", "consume_skb", "__ip_local_out", "ip_output", "__dev_queue_xmit",
    "tcp_v4_rcv", "tcp_v4_send_reset", "tcp_v4_connect", "tcp_sendmsg", "tcp_close",
    "nf_conntrack_in", "get_l4proto", "resolve_normal_ct", "nf_ct_get_tuple", "nf_ct_get_tuple_ports",
    "hash_conntrack_raw", "__nf_conntrack_find_get", "init_conntrack", "nf_ct_invert_tuple",
    "__nf_conntrack_alloc", "nf_ct_add_to_unconfirmed_list", "nf_conntrack_handle_packet",
    "nf_conntrack_tcp_packet", "nf_ct_delete", "nf_ct_kill_acct", "nf_ct_kill", "nf_conntrack_destroy",
    "nf_conntrack_free", "nf_conntrack_put", "nf_confirm", "__nf_conntrack_confirm", "tcp_retransmit_timer",
    "unix_stream_connect",
    # conntrack's own callees that function_graph shows (traced calls only, no model state)
    "nf_ct_ecache_ext_add", "nf_ct_ext_add", "__nf_ct_try_assign_helper", "__nf_ct_helper_find",
    "nf_ct_seq_offset", "tcp_new", "tcp_options", "__nf_ct_refresh_acct", "nf_ct_acct_add",
    "nf_conntrack_double_lock", "nf_conntrack_lock", "nf_conntrack_double_unlock",
    "__nf_conntrack_insert_prepare", "__nf_conntrack_hash_insert",
    # events: delivered from the confirm hook to ctnetlink (nf_conntrack_ecache.c)
    "nf_ct_deliver_cached_events", "ctnetlink_conntrack_event", "nfnetlink_has_listeners",
    "nf_conntrack_eventmask_report",
    # deleting an entry: out of the lists (5.10: nf_ct_delete_from_lists, then the dying list)
    "nf_ct_delete_from_lists", "__nf_ct_delete_from_lists", "nf_ct_helper_destroy",
    "nf_ct_remove_expectations", "nf_ct_add_to_dying_list",
}
#: kernel helpers the model calls only where conntrack calls them (RCU, locks, slab, checksum):
#: function_graph shows them inside the modelled functions; a kprobe on one would miss every
#: other caller in the kernel, so bpftrace does not offer them. Names per kernel: [trace.symbols].
HELPERS = {
    "rcu_read_lock", "rcu_read_unlock", "net_generic", "spin_lock", "spin_unlock", "spin_lock_bh", "spin_unlock_bh",
    "get_random_u8", "netlink_has_listeners", "__skb_checksum_complete", "__skb_checksum", "csum_partial", "do_csum",
    "local_bh_enable", "kmem_cache_alloc", "should_failslab", "krealloc", "__kmalloc_track_caller",
    "kmalloc_slab", "kfree", "nf_checksum", "nf_ip_checksum",
}
MODEL_FUNCTIONS |= HELPERS
#: model functions that say why a packet was sent (the sender's stack below __dev_queue_xmit)
CAUSES = ("tcp_v4_connect", "tcp_sendmsg", "tcp_close", "tcp_retransmit_timer")
#: the lab's processes, as ``comm`` shows them
SESSION_COMM = "python3"
_FIRST_PID = 1017


def profile_functions(p) -> set:
    """The model functions (model names) a kernel profile runs."""
    return MODEL_FUNCTIONS | set(p.hookfn.values()) | {v for v in p.functions.values() if v} | {
        "nf_ct_del_from_unconfirmed_list"}


class TraceState:
    def __init__(self, kernel):
        self.k = kernel
        self.bpftrace: List[object] = []
        self.comm = "swapper/0"
        self.pid = 0
        self.pids: Dict[str, int] = {}
        self.tx: Dict[Tuple, Tuple[str, ...]] = {}
        self.rx_cause: Optional[Tuple[str, ...]] = None
        self.ftrace = None  # ftrace.Tracefs, created on first use
        self._saved: List[Tuple[str, int]] = []
        kernel.tracer.listeners.append(self._on_event)

    # task context ------------------------------------------------------------------------
    def pid_of(self, comm: str) -> int:
        if comm.startswith("swapper"):
            return 0
        if comm not in self.pids:
            self.pids[comm] = _FIRST_PID + 7 * len(self.pids)
        return self.pids[comm]

    def enter_task(self, comm: str) -> Tuple[str, int]:
        prev = (self.comm, self.pid)
        self.comm, self.pid = comm, self.pid_of(comm)
        return prev

    def leave_task(self, prev: Tuple[str, int]) -> None:
        self.comm, self.pid = prev

    # why a received packet was sent --------------------------------------------------------
    @staticmethod
    def _key(skb) -> Tuple:
        return (skb.saddr, skb.daddr, skb.sport, skb.dport, skb.seq, skb.flags, skb.payload)

    def _on_event(self, ev) -> None:
        if ev.function == "tcp_sendmsg":  # the lab's session client writes a keystroke
            if ev.kind == "entry":
                self._saved.append(self.enter_task(SESSION_COMM))
            elif self._saved:
                self.leave_task(self._saved.pop())
        elif ev.function == "__dev_queue_xmit" and ev.kind == "entry":
            skb = ev.args.get("skb")
            if skb is not None:
                stack = tuple(self.k.tracer.stack)
                causes = tuple(f for f in stack if f in CAUSES)
                if not causes and stack and stack[0] == "ip_rcv":
                    causes = ("softirq",)  # a reply sent from the receive softirq
                self.tx[self._key(skb)] = (causes, (self.comm, self.pid))
                if len(self.tx) > 4096:
                    self.tx.pop(next(iter(self.tx)))
        elif ev.function == "ip_rcv":
            # the receive softirq runs in the sender's task (veth -> backlog -> local_bh_enable)
            if ev.kind == "entry":
                skb = ev.args.get("skb")
                cause, task = self.tx.get(self._key(skb), ((), None)) if skb is not None else ((), None)
                self.rx_cause = cause
                self._saved.append(self.enter_task(task[0]) if task else (self.comm, self.pid))
            else:
                self.rx_cause = None
                if self._saved:
                    self.leave_task(self._saved.pop())

    def cause_of(self, stack, ev) -> Optional[Tuple[str, ...]]:
        if stack and stack[0] == "ip_rcv":
            return self.rx_cause or None
        return None

    def known_functions(self, kernel) -> set:
        return profile_functions(kernel.profile)

    def kaddr(self, sym: str, off: int) -> int:
        return 0xFFFFFFFF81000000 + (zlib.crc32(sym.encode()) % 0xE00000) + off


def trace_state(kernel) -> TraceState:
    st = getattr(kernel, "_trace", None)
    if st is None:
        st = TraceState(kernel)
        kernel._trace = st
    return st


def task_of(kernel) -> Tuple[str, int]:
    st = getattr(kernel, "_trace", None)
    return (st.comm, st.pid) if st else ("swapper/0", 0)
