"""``struct sk_buff`` as far as the model needs it: IPv4 + TCP headers and conntrack state."""
from __future__ import annotations

import itertools
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Optional

from ...model.notes import LAB

IPPROTO_TCP = 6

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# enum ip_conntrack_info
IP_CT_ESTABLISHED, IP_CT_RELATED, IP_CT_NEW, IP_CT_IS_REPLY = 0, 1, 2, 3
IP_CT_ESTABLISHED_REPLY = IP_CT_ESTABLISHED + IP_CT_IS_REPLY
IP_CT_UNTRACKED = 7

_ids = itertools.count(1)

# Linux SYN options: MSS(4) SACK_PERM(2)+TS(10) NOP(1) WSCALE(3) = 20 bytes; data packets carry TS (12)
SYN_OPTIONS_LEN = 20
TS_OPTIONS_LEN = 12


# slots (less memory per packet) where dataclass offers them: Python >= 3.10
@dataclass(eq=False, **({"slots": True} if sys.version_info >= (3, 10) else {}))
class Skb:
    saddr: str
    daddr: str
    sport: int
    dport: int
    flags: int
    seq: int = 0
    ack_seq: int = 0
    payload: int = 0
    options_len: int = TS_OPTIONS_LEN
    protocol: int = IPPROTO_TCP
    ttl: int = 64
    window: int = 64240
    # conntrack state attached by nf_conntrack_in (skb->_nfct)
    nfct: Optional[object] = field(default=None, repr=False)
    ctinfo: Optional[int] = None
    mark: int = 0
    id: int = field(default_factory=lambda: next(_ids))
    #: where the packet is (namespace name, device) for tracing and pictures
    dev: str = ""
    #: why it was freed (kfree_skb's reason, or "consumed"); None while in flight
    freed: Optional[str] = field(default=None, repr=False)
    #: checksum summed in software by the sender (a RST of ip_send_unicast_reply: not
    #: CHECKSUM_PARTIAL), so a receiver's nf_ip_checksum verifies it over the whole packet
    csum_complete: bool = False

    @property
    def doff(self) -> int:
        return (20 + self.options_len) // 4

    @property
    def len(self) -> int:
        """IP total length: what nft/iptables counters add up."""
        return 20 + 20 + self.options_len + self.payload

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def flag_names(self) -> str:
        names = [("S", SYN), ("F", FIN), ("R", RST), ("P", PSH), (".", ACK)]
        return "".join(n for n, f in names if self.flags & f) or "none"

    def headers(self) -> bytes:
        """The IPv4 and TCP headers as real bytes (network byte order)."""
        ihl_ver = 0x45
        ip = struct.pack(
            "!BBHHHBBH4s4s", ihl_ver, 0, self.len, self.id & 0xFFFF, 0x4000, self.ttl,
            self.protocol, 0, _aton(self.saddr), _aton(self.daddr),
        )
        tcp = struct.pack(
            "!HHIIBBHHH", self.sport, self.dport, self.seq & 0xFFFFFFFF, self.ack_seq & 0xFFFFFFFF,
            self.doff << 4, self.flags, self.window, 0, 0,
        )
        return ip + tcp + bytes(self.options_len)


    #: headroom before the MAC header in the skb's linear buffer (model choice, like NET_SKB_PAD)
    HEADROOM = 64
    #: MAC addresses of the lab's veth pair, 02:00 and the IPv4 address (model choice; only
    #: visible to tracing)
    MACS = {m["addr"]: b"\x02\x00" + socket.inet_aton(m["addr"]) for m in (LAB["vm"], LAB["host"])}

    def linear(self):
        """The skb's linear buffer as real bytes, and where its headers start.

        Returns ``(buffer, layout)``: ``buffer`` is what ``skb->head`` points to (headroom,
        Ethernet header, IPv4 header, TCP header with options, payload), ``layout`` the
        offsets from ``head`` the kernel keeps in ``mac_header``, ``network_header``,
        ``transport_header`` (and ``data``: the IP header, as in ``ip_rcv``).
        """
        mac = self.HEADROOM
        eth = (self.MACS.get(self.daddr, bytes(6)) + self.MACS.get(self.saddr, bytes(6)) + b"\x08\x00")
        hdr = self.headers()
        buf = bytes(self.HEADROOM) + eth + hdr + bytes(self.payload)
        nh = mac + 14
        return buf, {"mac_header": mac, "network_header": nh, "transport_header": nh + 20,
                     "data": nh, "mac_len": 14}


def _aton(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))
