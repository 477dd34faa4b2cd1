"""TCP connection tracking: ``net/netfilter/nf_conntrack_proto_tcp.c``.

The state table is the kernel's ``tcp_conntracks[2][6][TCP_CONNTRACK_MAX]``; window
tracking is reduced to what decides timeouts (unacknowledged data) and retransmissions.
"""
from __future__ import annotations

from typing import Optional

from .skb import ACK, FIN, RST, SYN

(sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2) = range(10)
sIV = 10  # TCP_CONNTRACK_MAX
sIG = 11  # TCP_CONNTRACK_IGNORE
TCP_CONNTRACK_RETRANS, TCP_CONNTRACK_UNACK = 12, 13

STATE_NAMES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
               "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")

# index: TCP_SYN_SET, TCP_SYNACK_SET, TCP_FIN_SET, TCP_ACK_SET, TCP_RST_SET, TCP_NONE_SET
TCP_SYN_SET, TCP_SYNACK_SET, TCP_FIN_SET, TCP_ACK_SET, TCP_RST_SET, TCP_NONE_SET = range(6)

TCP_CONNTRACKS = (
    (  # ORIGINAL
        # sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        (sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2),  # syn
        (sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR),  # synack
        (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),  # fin
        (sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV),  # ack
        (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),  # rst
        (sIV,) * 10,                                          # none
    ),
    (  # REPLY
        (sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2),  # syn
        (sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR),  # synack
        (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),  # fin
        (sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG),  # ack
        (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),  # rst
        (sIV,) * 10,                                          # none
    ),
)

HZ_SECONDS = 1
#: tcp_timeouts[] in seconds (nf_conntrack_proto_tcp.c; the same in 5.10, 6.1, 6.18)
TCP_TIMEOUTS = {
    sSS: 2 * 60, sSR: 60, sES: 5 * 24 * 3600, sFW: 2 * 60, sCW: 60, sLA: 30, sTW: 2 * 60,
    sCL: 10, sS2: 2 * 60, TCP_CONNTRACK_RETRANS: 5 * 60, TCP_CONNTRACK_UNACK: 5 * 60,
}
TCP_MAX_RETRANS = 3
FLAG_DATA_UNACKNOWLEDGED = 0x10

ORIGINAL, REPLY = 0, 1


def get_conntrack_index(flags: int) -> int:
    if flags & RST:
        return TCP_RST_SET
    if flags & SYN:
        return TCP_SYNACK_SET if flags & ACK else TCP_SYN_SET
    if flags & FIN:
        return TCP_FIN_SET
    if flags & ACK:
        return TCP_ACK_SET
    return TCP_NONE_SET


#: ``get_conntrack_index`` of every combination of the five flags it looks at (it reads no
#: other bit): the hot path indexes this instead of calling it
CONNTRACK_INDEX = tuple(get_conntrack_index(f) for f in range(32))
_FLAG_BITS = 31  # FIN | SYN | RST | PSH | ACK


class TcpCt:
    """``struct ip_ct_tcp``, reduced: state, per-direction end (``seen[dir].td_end``) and
    unacked-data flag (``seen[dir].flags``), one slot each.

    As in the kernel, where it is ``nf_conn.proto.tcp`` (a union inside the entry), it is
    no object of its own: ``NfConn`` extends this class and ``ct.proto`` is the entry itself
    once :meth:`tcp_init` has run (None before)."""

    __slots__ = ("state", "end_orig", "end_reply", "flags_orig", "flags_reply", "last_index", "last_dir",
                 "last_seq", "last_end", "retrans")

    def tcp_init(self, state: int) -> None:
        """The state ``tcp_new()`` chose, and nothing seen yet in either direction."""
        self.state = state
        self.end_orig = self.end_reply = 0
        self.flags_orig = self.flags_reply = 0
        self.last_index = TCP_NONE_SET
        self.last_dir = ORIGINAL
        self.last_seq = 0
        self.last_end = 0
        self.retrans = 0

    @property
    def end(self):
        return [self.end_orig, self.end_reply]

    @property
    def flags(self):
        return [self.flags_orig, self.flags_reply]


NO_ACTIONS: frozenset = frozenset()
ASSURE = frozenset({"assured"})


def tcp_new(skb, loose: bool = True) -> Optional[int]:
    """``tcp_new()``: the state a new entry starts in, or None when the packet is invalid."""
    idx = CONNTRACK_INDEX[skb.flags & _FLAG_BITS]
    new_state = TCP_CONNTRACKS[ORIGINAL][idx][sNO]
    if new_state >= sIV:
        return None
    if new_state == sES and not loose:
        return None
    return new_state


def seg_end(skb) -> int:
    """seq + len, counting SYN and FIN as one byte each (``segment_seq_plus_len``)."""
    return skb.seq + skb.payload + (1 if skb.flags & SYN else 0) + (1 if skb.flags & FIN else 0)


def tcp_packet(ct, skb, direction: int, seen_reply: bool, assured: bool):
    """``nf_conntrack_tcp_packet()``: returns (verdict, timeout_seconds or None, actions).

    verdict: "accept", "invalid" (-NF_ACCEPT: not tracked further), "kill" (the entry is
    deleted at once), "ignore". actions: set of {"assured"}.
    """
    tcp: TcpCt = ct  # ct->proto.tcp is part of the entry (NfConn extends TcpCt)
    flags = skb.flags
    idx = CONNTRACK_INDEX[flags & _FLAG_BITS]
    old_state = tcp.state
    new_state = TCP_CONNTRACKS[direction][idx][old_state]
    actions = NO_ACTIONS

    if new_state == sSS and old_state in (sTW, sCL):
        # reopened connection: the kernel kills the old entry and lets the SYN create a new one
        return "reopen", None, actions
    if new_state == sIG:
        tcp.last_index = idx
        tcp.last_dir = direction
        return "ignore", None, actions
    if new_state >= sIV:
        return "invalid", None, actions

    # window tracking, reduced: remember what each side sent and what the other acked
    seq, payload = skb.seq, skb.payload
    end = seq + payload + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)  # seg_end(skb)
    if end == tcp.last_end and direction == tcp.last_dir and idx == tcp.last_index and seq == tcp.last_seq:
        tcp.retrans += 1
    else:
        tcp.retrans = 0
    if direction == ORIGINAL:  # this side: seen[dir], the other: seen[!dir]
        if end > tcp.end_orig or tcp.end_orig == 0:
            tcp.end_orig = end
        if payload > 0:
            tcp.flags_orig |= FLAG_DATA_UNACKNOWLEDGED
        if flags & ACK and skb.ack_seq >= tcp.end_reply and tcp.end_reply:
            tcp.flags_reply &= ~FLAG_DATA_UNACKNOWLEDGED
    else:
        if end > tcp.end_reply or tcp.end_reply == 0:
            tcp.end_reply = end
        if payload > 0:
            tcp.flags_reply |= FLAG_DATA_UNACKNOWLEDGED
        if flags & ACK and skb.ack_seq >= tcp.end_orig and tcp.end_orig:
            tcp.flags_orig &= ~FLAG_DATA_UNACKNOWLEDGED
    tcp.last_index, tcp.last_dir, tcp.last_seq, tcp.last_end = idx, direction, seq, end

    tcp.state = new_state
    if tcp.retrans >= TCP_MAX_RETRANS and TCP_TIMEOUTS[new_state] > TCP_TIMEOUTS[TCP_CONNTRACK_RETRANS]:
        timeout = TCP_TIMEOUTS[TCP_CONNTRACK_RETRANS]
    elif idx == TCP_RST_SET:
        timeout = TCP_TIMEOUTS[sCL]
    elif (tcp.flags_orig | tcp.flags_reply) & FLAG_DATA_UNACKNOWLEDGED and \
            TCP_TIMEOUTS[new_state] > TCP_TIMEOUTS[TCP_CONNTRACK_UNACK]:
        timeout = TCP_TIMEOUTS[TCP_CONNTRACK_UNACK]
    else:
        timeout = TCP_TIMEOUTS[new_state]

    if not seen_reply:
        # "If only reply is a RST, we can consider ourselves not to have an established
        # connection ... we can delete the conntrack immediately."
        if flags & RST:
            return "kill", timeout, actions
    elif not assured and old_state in (sSR, sES) and new_state == sES:
        actions = ASSURE
    return "accept", timeout, actions
