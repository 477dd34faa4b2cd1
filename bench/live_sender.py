"""Send SYNs from inside a network namespace with a raw socket (run under ``ip netns exec``).

    ip netns exec NFTEACH-HOST-NS python3 bench/live_sender.py DADDR DPORT N

Builds ``N`` SYNs first (distinct source address/port pairs on the lab's /24, correct TCP
checksums, the options a Linux SYN carries), then sends them as fast as one Python loop
can and prints ``{"sent": N, "seconds": T}`` as JSON. Standard library only.
"""
from __future__ import annotations

import json
import socket
import struct
import sys
import time

SRC_HOSTS = [f"192.168.122.{i}" for i in range(2, 255) if i != 204]
# MSS 1460, SACK permitted, timestamps, NOP, window scale 7: 20 bytes, as Linux sends
OPTIONS = bytes([2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7])


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src: str, dst: str, sport: int, dport: int, seq: int) -> bytes:
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp_len = 20 + len(OPTIONS)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (tcp_len // 4) << 4, 0x02, 64240, 0, 0) + OPTIONS
    csum = checksum(s + d + struct.pack("!BBH", 0, socket.IPPROTO_TCP, tcp_len) + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    # IP_HDRINCL: the kernel fills in the IP checksum and total length
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, 0, 0x4000, 64, socket.IPPROTO_TCP, 0, s, d)
    return ip + tcp


def main(argv) -> int:
    daddr, dport, n = argv[1], int(argv[2]), int(argv[3])
    pkts = []
    for j in range(n):
        src = SRC_HOSTS[j % len(SRC_HOSTS)]
        sport = 1024 + (j // len(SRC_HOSTS)) % 60000
        pkts.append(syn(src, daddr, sport, dport, (j * 7919) & 0xFFFFFFFF))
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    dest = (daddr, 0)
    send = sock.sendto
    errors = 0
    t0 = time.perf_counter()
    for p in pkts:
        try:
            send(p, dest)
        except (BlockingIOError, OSError):
            errors += 1
    dt = time.perf_counter() - t0
    sock.close()
    print(json.dumps({"sent": n - errors, "errors": errors, "seconds": dt}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
