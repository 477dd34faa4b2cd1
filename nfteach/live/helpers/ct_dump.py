"""Dump the conntrack table of the current network namespace as JSON, over netlink (pyroute2).

Run as ``ip netns exec NS python3 ct_dump.py``; prints one JSON list on stdout.
"""
import json
import socket

from pyroute2 import Conntrack
from pyroute2.netlink.nfnetlink.nfctsocket import IPSBIT_TO_NAME, TCP_CONNTRACK_TO_NAME


def tup(t):
    return {"src": t.saddr, "dst": t.daddr, "proto": t.proto, "sport": t.sport, "dport": t.dport,
            "icmp_type": getattr(t, "icmp_type", None), "icmp_code": getattr(t, "icmp_code", None),
            "icmp_id": getattr(t, "icmp_id", None)}


def main():
    out = []
    with Conntrack() as ct:
        for e in ct.dump_entries():
            status = e.status or 0
            out.append({
                "orig": tup(e.tuple_orig),
                "reply": tup(e.tuple_reply),
                "proto": e.tuple_orig.proto,
                "proto_name": {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp",
                               socket.IPPROTO_ICMP: "icmp"}.get(e.tuple_orig.proto, str(e.tuple_orig.proto)),
                "state": TCP_CONNTRACK_TO_NAME.get(e.protoinfo.state) if e.protoinfo else None,
                "status": status,
                "flags": [name for bit, name in sorted(IPSBIT_TO_NAME.items()) if status & bit],
                "timeout": e.timeout,
                "mark": e.mark,
                "use": e.use,
                "zone": e.zone,
            })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
