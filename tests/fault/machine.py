"""The state of this machine that a lab must never change, as one comparable snapshot.

Taken before and after each escape attempt of the fault tier: the root namespace's links,
addresses, routes, rules and rulesets, machine-wide sysctls, the top of the cgroup tree
(``ip vrf exec`` makes directories there), the mount table. Namespaces of live labs are
left out: other labs (other tests, other users) come and go on a shared machine.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nfteach.live.capability import why_not_live

#: machine-wide sysctls a lab command might try to write (read here, never written)
SYSCTLS = ("kernel/domainname", "kernel/hostname", "kernel/modprobe", "kernel/core_pattern",
           "net/ipv4/ip_forward", "kernel/printk")


def _out(argv) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"[{e}]"
    return f"[{p.returncode}]\n{p.stdout}{p.stderr}"


def _save(argv) -> str:
    return "\n".join(ln for ln in _out(argv).splitlines() if not ln.startswith("#"))


#: file systems a lab command could mount on the machine (tracing, cgroups for ip vrf exec)
FSTYPES = ("tracefs", "debugfs", "cgroup", "cgroup2", "proc", "sysfs", "bpf")


def _mounts() -> str:
    """The machine's mounts of :data:`FSTYPES` (other helpers' netns and temp mounts vary)."""
    out = []
    for ln in Path("/proc/1/mounts").read_text().splitlines():
        f = ln.split()
        if len(f) > 2 and f[2] in FSTYPES and (f[1] == "/proc" or f[1].startswith(("/sys", "/run/", "/var/run/"))) \
                and not f[1].startswith("/run/netns/"):
            out.append(" ".join(f[:4]))
    return "\n".join(sorted(out))


#: None when live labs can run here, else why not: the package's own check
why_no_live = why_not_live


def snapshot() -> dict:
    snap = {
        "nft list ruleset": _out(["nft", "list", "ruleset"]),
        "iptables-save": _save(["iptables-save"]),
        "iptables-legacy-save": _save(["iptables-legacy-save"]),
        "ip -o link": _out(["ip", "-o", "link"]),
        "ip -o addr": _out(["ip", "-o", "addr"]),
        "ip route": _out(["ip", "route"]),
        "ip rule": _out(["ip", "rule"]),
        "mounts": _mounts(),
        # ip vrf exec makes <cgroup2 root>/vrf/NAME and leaves it there
        "cgroups": " ".join(sorted(os.listdir("/sys/fs/cgroup"))) if os.path.isdir("/sys/fs/cgroup") else "",
        "vrf cgroups": " ".join(str(p) for p in (Path("/sys/fs/cgroup/vrf"), Path("/sys/fs/cgroup/unified/vrf"))
                                if p.exists()),
    }
    for key in SYSCTLS:
        try:
            snap[key] = Path("/proc/sys", key).read_text()
        except OSError as e:
            snap[key] = f"[{e.strerror}]"
    return snap


def changes(before: dict, after: dict) -> list:
    return [k for k in before if before[k] != after.get(k)]
