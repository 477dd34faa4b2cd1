"""The IPv4/TCP packet path between the lab's two namespaces.

Receive: ``ip_rcv`` -> PRE_ROUTING -> routing -> ``ip_local_deliver`` -> LOCAL_IN ->
``tcp_v4_rcv`` (a listener answers a SYN with SYN-ACK; a closed port with RST).
Send: ``__ip_local_out`` -> LOCAL_OUT -> ``ip_output`` -> POST_ROUTING -> the veth pair.
Hooks run in ``nf_hook_slow``; a DROP verdict frees the skb with ``kfree_skb`` and with it
an unconfirmed conntrack entry.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from .netfilter import (
    FAMILIES,
    LOCAL_IN,
    LOCAL_OUT,
    NF_ACCEPT,
    NF_DROP,
    NF_STOLEN,
    POST_ROUTING,
    PRE_ROUTING,
)
from .netns import HookState
from .skb import ACK, FIN, PSH, RST, SYN, SYN_OPTIONS_LEN, Skb
from .skb import _ids as _skb_ids
from .tracer import _NULL, _Frame, untraced_branch

_new_state = tuple.__new__  # HookState(...) in one C call

LINK_LATENCY = 0.00005  # veth + softirq, seconds
RTO_INIT = 1.0  # TCP_TIMEOUT_INIT
EPHEMERAL = (32768, 60999)  # net.ipv4.ip_local_port_range


class UnixSkb:
    """An AF_UNIX skb (``sock_wmalloc`` in ``unix_stream_connect``): no network headers
    (``transport_header`` unset, ``~0``), ``skb->protocol`` 0. Only tracing sees it."""

    HEADROOM = 64
    eth_protocol = 0
    def __init__(self):
        self.id = next(_skb_ids)
        self.nfct, self.ctinfo, self.mark, self.dev, self.freed = None, None, 0, "", None

    @property
    def len(self) -> int:
        return 1

    def linear(self):
        return bytes(self.HEADROOM + 1), {"mac_header": 0xFFFF, "network_header": 0xFFFF,
                                          "transport_header": 0xFFFF, "data": self.HEADROOM, "mac_len": 0}


class Sock:
    """A TCP endpoint (``struct tcp_sock``, reduced)."""

    def __init__(self, ns, laddr, lport, raddr, rport, state, role):
        self.ns, self.laddr, self.lport, self.raddr, self.rport = ns, laddr, lport, raddr, rport
        self.state = state
        self.role = role  # "client" | "server" | "session-client" | "session-server"
        self.snd_nxt = 0
        self.rcv_nxt = 0
        self.error: Optional[str] = None
        self.received = 0
        self.syn_count = 0

    @property
    def key(self):
        return (self.ns.name, self.laddr, self.lport, self.raddr, self.rport)


@untraced_branch
class Stack:
    def __init__(self, kernel):
        self.k = kernel
        self.tracer = kernel.tracer
        self.peer: Dict[str, object] = {}
        self.addr: Dict[str, str] = {}
        self.socks: Dict[Tuple, Sock] = {}
        self.listeners: Dict[Tuple[str, int], str] = {}
        self.session: Optional[Tuple[Sock, Sock]] = None
        self.packets: list = []  # (time, ns, event, skb) for pictures; bounded
        self.record = False

    # -- topology -------------------------------------------------------------------------
    def link(self, a, addr_a, b, addr_b) -> None:
        self.peer[a.name], self.peer[b.name] = b, a
        self.addr[a.name], self.addr[b.name] = addr_a, addr_b
        a.addr, b.addr = addr_a, addr_b

    def _t(self, name, **args):
        tr = self.tracer
        return _Frame(tr, name, args) if tr.listeners else _NULL

    # -- netfilter ------------------------------------------------------------------------
    def nf_hook(self, ns, hooknum: int, skb: Skb, in_dev: str = "", out_dev: str = "") -> bool:
        """``NF_HOOK``: True if the packet may continue (okfn runs)."""
        nf = ns.nf
        entries = nf.hooks_ipv4[hooknum]
        if not entries:
            return True
        state = nf.states_ipv4[hooknum]
        if state is None or state[3] != in_dev or state[4] != out_dev:
            state = nf.states_ipv4[hooknum] = _new_state(HookState, (hooknum, "ipv4", ns, in_dev, out_dev))
        record = self.record
        with self._t("nf_hook_slow", skb=skb, hook=hooknum):
            for ops in entries:  # a tuple: (un)registering replaces it, never changes it
                with self._t(ops.hook, skb=skb, state=state, priority=ops.priority, owner=ops.owner):
                    fn = ops.fn
                    verdict = fn(skb, state) if fn is not None else NF_ACCEPT
                if record:
                    self.packets.append((self.k.now, ns.name, hooknum, ops, verdict, skb))
                if verdict == NF_ACCEPT:
                    continue
                if verdict == NF_DROP:
                    self.kfree_skb(skb, reason="NETFILTER_DROP")
                    return False
                if verdict == NF_STOLEN:
                    return False
        return True

    def kfree_skb(self, skb: Skb, reason: str = "NOT_SPECIFIED") -> None:
        with self._t(self.k.profile.fn("free_skb") or "kfree_skb", skb=skb, reason=reason):
            with self._t("skb_release_head_state", skb=skb):
                self.k.conntrack.skb_release(skb)
        skb.freed = reason

    def consume_skb(self, skb: Skb) -> None:
        with self._t("consume_skb", skb=skb):
            self.k.conntrack.skb_release(skb)
        skb.freed = "consumed"

    # -- receive --------------------------------------------------------------------------
    def ip_rcv(self, ns, skb: Skb) -> None:
        with self._t("ip_rcv", skb=skb):
            skb.dev = "eth0"
            if not self.nf_hook(ns, PRE_ROUTING, skb, in_dev="eth0"):
                return
            with self._t("ip_rcv_finish", skb=skb):
                if skb.daddr != ns.addr:
                    self.kfree_skb(skb, reason="IP_NOROUTE")
                    return
                self.ip_local_deliver(ns, skb)

    def ip_local_deliver(self, ns, skb: Skb) -> None:
        with self._t("ip_local_deliver", skb=skb):
            if not self.nf_hook(ns, LOCAL_IN, skb, in_dev="eth0"):
                return
            with self._t("ip_local_deliver_finish", skb=skb):
                self.tcp_v4_rcv(ns, skb)

    # -- send -----------------------------------------------------------------------------
    def ip_local_out(self, ns, skb: Skb) -> None:
        with self._t("__ip_local_out", skb=skb):
            if not self.nf_hook(ns, LOCAL_OUT, skb, out_dev="eth0"):
                return
        with self._t("ip_output", skb=skb):
            if not self.nf_hook(ns, POST_ROUTING, skb, out_dev="eth0"):
                return
        self.dev_xmit(ns, skb)

    def dev_xmit(self, ns, skb: Skb) -> None:
        """veth: ``skb_scrub_packet`` drops the conntrack reference, then the peer receives."""
        with self._t("__dev_queue_xmit", skb=skb):
            peer = self.peer.get(ns.name)
            self.consume_skb(skb)
            if peer is None:
                return
            rx = Skb(skb.saddr, skb.daddr, skb.sport, skb.dport, skb.flags, skb.seq, skb.ack_seq,
                     skb.payload, skb.options_len, skb.protocol, skb.ttl, skb.window,
                     csum_complete=skb.csum_complete)
            self.k.schedule(LINK_LATENCY, self.ip_rcv, peer, rx)

    # -- TCP ------------------------------------------------------------------------------
    def listen(self, ns, port: int, role: str = "server") -> None:
        self.listeners[(ns.name, port)] = role

    def _send(self, sock: Sock, flags: int, payload: int = 0, seq: Optional[int] = None) -> Skb:
        opts = SYN_OPTIONS_LEN if flags & SYN else 12
        skb = Skb(sock.laddr, sock.raddr, sock.lport, sock.rport, flags,
                  sock.snd_nxt if seq is None else seq, sock.rcv_nxt if flags & ACK else 0, payload, opts)
        if seq is None:
            sock.snd_nxt += payload + (1 if flags & (SYN | FIN) else 0)
        self.ip_local_out(sock.ns, skb)
        return skb

    def send_reset(self, ns, skb: Skb) -> None:
        """``tcp_v4_send_reset``: RST (or RST/ACK for a segment without ACK), no options."""
        if skb.flags & ACK:
            flags, seq, ack = RST, skb.ack_seq, 0
        else:
            flags, seq = RST | ACK, 0
            ack = skb.seq + skb.payload + (1 if skb.flags & SYN else 0) + (1 if skb.flags & FIN else 0)
        rst = Skb(skb.daddr, skb.saddr, skb.dport, skb.sport, flags, seq, ack, 0, 0, csum_complete=True)
        with self._t("tcp_v4_send_reset", skb=skb):
            self.ip_local_out(ns, rst)

    def tcp_v4_rcv(self, ns, skb: Skb) -> None:
        with self._t("tcp_v4_rcv", skb=skb):
            sock = self.socks.get((ns.name, skb.daddr, skb.dport, skb.saddr, skb.sport))
            if sock is None:
                role = self.listeners.get((ns.name, skb.dport))
                if role == "blackhole":
                    pass  # a listener whose backlog is full: the SYN is silently ignored
                elif role is not None and skb.flags & SYN and not skb.flags & ACK:
                    self._passive_open(ns, skb, role)
                elif not skb.flags & RST:
                    self.send_reset(ns, skb)
                if role is None:
                    # no_tcp_socket -> discard_it: kfree_skb (reason NO_SOCKET on 6.x), which
                    # the skb:kfree_skb tracepoint sees (live 6.18: a SYN to a closed port
                    # counts 1 in a kfree_skb probe; found by `nfteach fidelity`)
                    self.kfree_skb(skb, reason="NO_SOCKET")
                else:
                    self.consume_skb(skb)
                return
            self._segment(sock, skb)
            self.consume_skb(skb)

    def _passive_open(self, ns, skb: Skb, role: str) -> None:
        sock = Sock(ns, skb.daddr, skb.dport, skb.saddr, skb.sport, "SYN_RECV", role)
        sock.snd_nxt = self.k.rng.randrange(1 << 30)
        sock.rcv_nxt = skb.seq + 1
        self.socks[sock.key] = sock
        self._send(sock, SYN | ACK)

    def _segment(self, sock: Sock, skb: Skb) -> None:
        f = skb.flags
        if f & RST:
            if sock.state == "SYN_SENT":
                sock.error = "refused"
            sock.state = "CLOSED"
            self.socks.pop(sock.key, None)
            return
        if sock.state == "SYN_SENT":
            if f & SYN and f & ACK:
                sock.rcv_nxt = skb.seq + 1
                sock.state = "ESTABLISHED"
                self._send(sock, ACK)
            return
        if sock.state == "SYN_RECV":
            if f & ACK:
                sock.state = "ESTABLISHED"
            else:
                return
        if skb.payload:
            sock.rcv_nxt = skb.seq + skb.payload
            sock.received += skb.payload
            if sock.role in ("server", "session-server"):
                self._send(sock, PSH | ACK, payload=skb.payload)  # echo, ACK piggybacked
            else:
                self._send(sock, ACK)  # TCP_QUICKACK
        if f & FIN:
            sock.rcv_nxt = skb.seq + skb.payload + 1
            if sock.state == "ESTABLISHED":
                sock.state = "CLOSE_WAIT"
                self._send(sock, ACK)
                if sock.role in ("server", "session-server"):
                    # the application reads EOF and closes
                    sock.state = "LAST_ACK"
                    self._send(sock, FIN | ACK)
            elif sock.state in ("FIN_WAIT1", "FIN_WAIT2"):
                sock.state = "TIME_WAIT"
                self._send(sock, ACK)
            return
        if f & ACK:
            if sock.state == "FIN_WAIT1" and skb.ack_seq >= sock.snd_nxt:
                sock.state = "FIN_WAIT2"
            elif sock.state == "LAST_ACK" and skb.ack_seq >= sock.snd_nxt:
                sock.state = "CLOSED"
                self.socks.pop(sock.key, None)

    def ephemeral_port(self, ns) -> int:
        lo, hi = EPHEMERAL
        while True:
            p = self.k.rng.randint(lo, hi)
            if not any(k[0] == ns.name and k[2] == p for k in self.socks):
                return p

    def connect(self, ns, daddr: str, dport: int, role: str = "client") -> Sock:
        sock = Sock(ns, ns.addr, self.ephemeral_port(ns), daddr, dport, "SYN_SENT", role)
        sock.snd_nxt = self.k.rng.randrange(1 << 30)
        self.socks[sock.key] = sock
        with self._t("tcp_v4_connect"):
            self._syn(sock, sock.snd_nxt, RTO_INIT)
        return sock

    def _syn(self, sock: Sock, isn: int, rto: float) -> None:
        """Send (or retransmit) the SYN. The retransmission timer starts at 1 s and doubles,
        except for the first ``tcp_syn_linear_timeouts`` retransmissions (6.5+), which
        keep 1 s (profile data; measured on 6.18: 4)."""
        if sock.state != "SYN_SENT" or self.socks.get(sock.key) is not sock:
            return
        sock.syn_count += 1
        if sock.syn_count == 1:
            self._send(sock, SYN, seq=isn)
        else:
            with self._t("tcp_retransmit_timer"):  # the retransmission timer (softirq) sends it again
                self._send(sock, SYN, seq=isn)
        sock.snd_nxt = isn + 1
        linear = int(self.k.profile.extra.get("tcp_syn_linear_timeouts", 0))
        next_rto = rto if sock.syn_count <= linear else rto * 2
        self.k.schedule(rto, self._syn, sock, isn, next_rto)

    def close(self, sock: Sock) -> None:
        if sock.state == "ESTABLISHED":
            sock.state = "FIN_WAIT1"
            with self._t("tcp_close"):
                self._send(sock, FIN | ACK)
        elif sock.state == "SYN_SENT":
            sock.state = "CLOSED"
            self.socks.pop(sock.key, None)

    # -- AF_UNIX ----------------------------------------------------------------------------
    def unix_stream_connect(self, ns, path: str) -> str:
        """``connect()`` of an AF_UNIX stream socket to ``path``; the model has no unix
        listeners, so it fails with ENOENT. Kernels that allocate the skb for the peer before
        looking the peer up (profile ``[trace] unix_connect_prealloc_skb``: 5.10, 6.1) free
        it on the way out through ``kfree_skb``, which the skb:kfree_skb tracepoint sees."""
        with self._t("unix_stream_connect", path=path):
            if self.k.profile.extra.get("trace", {}).get("unix_connect_prealloc_skb"):
                self.kfree_skb(UnixSkb(), reason="NOT_SPECIFIED")
        return "ENOENT"

    # -- the lab's session on tcp/22 -----------------------------------------------------
    def start_session(self, client_ns, server_ns, port: int = 22) -> None:
        self.listen(server_ns, port, "session-server")
        c = self.connect(client_ns, server_ns.addr, port, role="session-client")
        self.k.settle(0.01)
        s = self.socks[(server_ns.name, server_ns.addr, port, client_ns.addr, c.lport)]
        s.role = "session-server"
        self.session = (c, s)
        # other connections to the port are ordinary servers: echo, close on EOF
        self.listeners[(server_ns.name, port)] = "server"

    def keystroke(self) -> None:
        """One keystroke of the session: 1 byte, its echo, an immediate ACK."""
        if not self.session:
            return
        c, _ = self.session
        if c.state != "ESTABLISHED":
            return
        with self._t("tcp_sendmsg"):
            self._send(c, PSH | ACK, payload=1)
        self.k.settle(0.001)


def families():
    return FAMILIES
