"""What this machine offers the live backend, measured rather than assumed.

``probe()`` returns a dict; ``nfteach.live.doctor.report()`` turns it into text.
Every probe that could change the machine runs where it cannot: bpftrace and tracefs in
a private mount namespace (``unshare -m``), ftrace writes in a tracing *instance* of our
own (removed again), ``nft list hooks`` in a lab namespace with a throw-away base chain.

>>> probe(quick=True)["tracepoint"]        # doctest: +SKIP
True
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .runner import ENV

HELPERS = Path(__file__).resolve().parent / "helpers"
TRACEFS_EXEC = HELPERS / "tracefs_exec.py"

#: tool -> argv that prints its version
TOOLS = {
    "ip": ["ip", "-V"],
    "nft": ["nft", "--version"],
    "iptables": ["iptables", "--version"],
    "iptables-legacy": ["iptables-legacy", "--version"],
    "iptables-nft": ["iptables-nft", "--version"],
    "conntrack": ["conntrack", "--version"],
    "nc": ["nc", "-h"],
    "sysctl": ["sysctl", "--version"],
    "bpftrace": ["bpftrace", "--version"],
    "lsmod": ["kmod", "--version"],
    "modinfo": ["modinfo", "--version"],
    "drgn": ["drgn", "--version"],
    "trace-cmd": ["trace-cmd", "--version"],
    "unshare": ["unshare", "--version"],
}

#: one tiny program per bpftrace probe type; each attaches, then BEGIN exits at once
BPF_PROBES = {
    "tracepoint": "tracepoint:skb:kfree_skb { } BEGIN { exit(); }",
    "kprobe": "kprobe:ip_rcv { } BEGIN { exit(); }",
    "kfunc": "kfunc:ip_rcv { } BEGIN { exit(); }",
}


def _run(argv: Sequence[str], timeout: float = 20, full_path: bool = False) -> subprocess.CompletedProcess:
    env = dict(ENV)
    if full_path:
        env["PATH"] = ENV["PATH"] + ":" + os.environ.get("PATH", "")
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(list(argv), 127, "", f"{e}")


def why_not_live() -> Optional[str]:
    """None when a live lab can start here, else one line saying what is missing."""
    if not sys.platform.startswith("linux"):
        return "the live backend needs Linux; use --backend sim or --backend vm"
    if os.geteuid() != 0:
        return "the live backend needs root (network namespaces); run as root, or use --backend sim"
    for tool in ("ip", "nft", "conntrack"):
        if not shutil.which(tool, path=ENV["PATH"]):
            return f"the live backend needs {tool}; apt-get install iproute2 nftables conntrack"
    if _run(["ip", "netns", "list"]).returncode != 0:
        return "`ip netns` does not work here; the live backend needs network namespaces"
    return None


def tool_versions() -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for name, argv in TOOLS.items():
        if not shutil.which(argv[0], path=ENV["PATH"] + ":" + os.environ.get("PATH", "")):
            out[name] = None
            continue
        p = _run(argv, timeout=10, full_path=True)
        text = (p.stdout or p.stderr).strip().splitlines()
        out[name] = text[0].strip() if text else f"(exit {p.returncode})"
    return out


def in_private_mounts(argv: Sequence[str]) -> List[str]:
    """argv run with tracefs mounted in a private mount namespace (never the machine's)."""
    return ["unshare", "--mount", "--propagation", "private", sys.executable, "-I", str(TRACEFS_EXEC), *argv]


def bpftrace_probe_types(timeout: float = 20) -> Dict[str, object]:
    """Try each probe type with a tiny program; True when it attached, else bpftrace's error."""
    res: Dict[str, object] = {}
    if not shutil.which("bpftrace", path=ENV["PATH"]):
        return {k: "bpftrace is not installed" for k in BPF_PROBES}
    for kind, prog in BPF_PROBES.items():
        p = _run(in_private_mounts(["bpftrace", "-e", prog]), timeout=timeout)
        if p.returncode == 0:
            res[kind] = True
        else:
            errs = [ln for ln in p.stderr.splitlines() if "ERROR" in ln and "RLIMIT_MEMLOCK" not in ln]
            tail = p.stderr.strip().splitlines()[-1:] or [f"exit status {p.returncode}"]
            res[kind] = errs[-1] if errs else tail[0]
    return res


_FTRACE_PROBE = r"""
import os, sys
d = '/sys/kernel/tracing/instances/' + sys.argv[1]
if not os.path.isdir('/sys/kernel/tracing/instances'):
    print('no tracefs'); sys.exit(0)
os.mkdir(d)
try:
    tracers = open('/sys/kernel/tracing/available_tracers').read().split()
    try:
        with open(d + '/set_ftrace_filter', 'w') as f:
            f.write('ip_rcv')
        print('ok', ','.join(tracers))
    except OSError as e:
        print('refused', ','.join(tracers), e.strerror)
finally:
    os.rmdir(d)
"""


def ftrace_probe() -> Dict[str, object]:
    """Is tracefs there, which tracers exist, can a function filter be set (in our own instance)?"""
    name = f"nfteach-probe-{os.getpid()}"
    p = _run(in_private_mounts([sys.executable, "-I", "-c", _FTRACE_PROBE, name]))
    words = p.stdout.split()
    if not words or words[0] == "no":
        return {"tracefs": False, "tracers": [], "ftrace_function": False,
                "ftrace_error": (p.stderr.strip().splitlines() or ["tracefs not available"])[-1]}
    tracers = words[1].split(",") if len(words) > 1 else []
    ok = words[0] == "ok"
    return {"tracefs": True, "tracers": tracers, "ftrace_function": ok and "function" in tracers,
            "ftrace_error": None if ok else "writing set_ftrace_filter: " + " ".join(words[2:])}


def vmlinux_debug_info() -> Optional[str]:
    rel = platform.release()
    for p in (f"/usr/lib/debug/boot/vmlinux-{rel}", f"/usr/lib/debug/lib/modules/{rel}/vmlinux",
              f"/boot/vmlinux-{rel}", f"/lib/modules/{rel}/build/vmlinux"):
        if os.path.exists(p):
            return p
    return None


def nft_list_hooks(exec_prefix: Sequence[str]) -> bool:
    """In the namespace ``exec_prefix`` enters: does ``nft list hooks`` show a chain we add?

    nft 1.0.6 prints nothing and exits 0 when the kernel lacks
    CONFIG_NETFILTER_NETLINK_HOOK (the netlink requests fail with EINVAL), so an empty
    listing with a base chain present means "not available".
    """
    t = "nfteach_hooks_probe"
    pre = list(exec_prefix)
    _run([*pre, "nft", "add", "table", "ip", t])
    _run([*pre, "nft", "add", "chain", "ip", t, "c", "{", "type", "filter", "hook", "input", "priority", "0", ";", "}"])
    p = _run([*pre, "nft", "list", "hooks"])
    _run([*pre, "nft", "delete", "table", "ip", t])
    return p.returncode == 0 and bool(p.stdout.strip())


def probe(netns: Optional[str] = None, quick: bool = False) -> dict:
    """Measure everything; ``quick`` skips tool versions and the bpftrace attach tests.

    ``netns``: a lab namespace to run the ``nft list hooks`` probe in; without one, a
    short-lived stamped lab namespace pair is created for it and removed.
    """
    caps: dict = {
        "kernel": platform.release(),
        "root": os.geteuid() == 0,
        "live_ok": why_not_live() is None,
        "why_not": why_not_live(),
        "kcore": os.path.exists("/proc/kcore"),
        "vmlinux": vmlinux_debug_info(),
        "modules": os.path.exists("/proc/modules"),
    }
    caps["drgn_live"] = caps["kcore"] and bool(caps["vmlinux"])
    tools = {k: shutil.which(v[0], path=ENV["PATH"] + ":" + os.environ.get("PATH", "")) for k, v in TOOLS.items()}
    caps["tools"] = tools
    if not quick:
        caps["versions"] = tool_versions()
        caps["iptables_backends"] = [b for b in ("legacy", "nft") if caps["versions"].get(f"iptables-{b}")]
        caps["bpftrace"] = bpftrace_probe_types() if caps["root"] else {}
        caps.update(ftrace_probe() if caps["root"] and tools.get("unshare") else {})
    if caps["live_ok"]:
        if netns:
            caps["nft_list_hooks"] = nft_list_hooks(["ip", "netns", "exec", netns])
        else:
            from .namespaces import LabNamespaces, reap_stale

            reap_stale()
            ns = LabNamespaces()
            try:
                ns.create()
                caps["nft_list_hooks"] = nft_list_hooks(ns.exec_prefix("vm"))
            finally:
                ns.destroy()
    else:
        caps["nft_list_hooks"] = False
    return caps


_CACHE: Dict[str, dict] = {}


def probe_cached() -> dict:
    """``probe(quick=True)`` once per process (the answers are properties of the machine)."""
    if "quick" not in _CACHE:
        _CACHE["quick"] = probe(quick=True)
    return _CACHE["quick"]


def bpftrace_cached() -> Dict[str, object]:
    """``bpftrace_probe_types()`` once per process."""
    if "bpftrace" not in _CACHE:
        _CACHE["bpftrace"] = bpftrace_probe_types()
    return _CACHE["bpftrace"]
