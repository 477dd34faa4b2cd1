"""The simulator's SYN stream, injected into this machine's kernel (the ``live`` lab).

A live lab is started (two namespaces, conntrack on as ``modprobe nf_conntrack
enable_hooks=1`` does on this kernel, the same nft rules as ``sim_syn``). A helper started
with ``ip netns exec <host-ns> python3 bench/live_sender.py`` (an argument list, no
shell) sends ``n`` prebuilt SYNs through a raw socket to 192.168.122.204; the rate is what
the vm namespace's nft counter saw, divided by the sender's time (the veth delivers each
packet in the sender's own softirq, so the sender's clock covers the receive path).

* ``drop``: ``tcp dport 2570 counter drop`` in filter/INPUT; the unconfirmed entry dies.
* ``accept``: ``tcp dport 2571 counter accept``; nothing listens on 2571, so the kernel
  answers each SYN with a RST (an extra LOCAL_OUT path the sim's blackhole listener does
  not take) to a neighbour that never answers ARP.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from sim_syn import PORTS, SETUP, VM_ADDR  # noqa: E402


def why_not() -> Optional[str]:
    if os.geteuid() != 0:
        return "not root"
    from nfteach.live.capability import why_not_live

    return why_not_live()


def _counter(lab, dport: int) -> int:
    text = lab.run("sudo nft list chain ip filter input").output
    for line in text.splitlines():
        if f"dport {dport} counter packets" in line:
            return int(line.split("packets")[1].split()[0])
    raise RuntimeError(f"no counter for dport {dport} in:\n{text}")


def measure(n: int, verdicts=("accept", "drop")) -> List[Dict]:
    from nfteach import Lab
    from nfteach.live.backend import LiveBackend

    out = []
    with Lab(LiveBackend()) as lab:
        for line in SETUP:
            if "sysctl" in line:
                continue  # the machine's nf_conntrack_max is not the lab's to change
            r = lab.run(line)
            if r.status != 0 and "emulating" not in r.output:
                raise RuntimeError(f"live setup failed: {line}: {r.output.strip()}")
        host_ns = lab.backend.ns.ns("host")
        for verdict in verdicts:
            dport = PORTS[verdict]
            before = _counter(lab, dport)
            argv = ["ip", "netns", "exec", host_ns, sys.executable, os.path.join(HERE, "live_sender.py"),
                    VM_ADDR, str(dport), str(n)]
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"sender failed: {p.stderr.strip()}")
            sent = json.loads(p.stdout)
            time.sleep(0.2)  # let the backlog drain
            seen = _counter(lab, dport) - before
            out.append({"case": f"{verdict}, trace off", "n": n, "sent": sent["sent"], "seen": seen,
                        "seconds": sent["seconds"], "syn_per_s": seen / sent["seconds"]})
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    reason = why_not()
    if reason:
        print(json.dumps({"skipped": reason}))
    else:
        for r in measure(n):
            print(json.dumps(r))
