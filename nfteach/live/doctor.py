"""``nfteach doctor``: what this machine offers the live backend, measured, in plain text.

>>> print(report())                                   # doctest: +SKIP
nfteach doctor — live backend on Linux 6.18.5 (profile 6.18)
  root ........................ yes
  network namespaces .......... yes
  ...
"""
from __future__ import annotations

from typing import List, Optional

from . import capability


def _yn(v) -> str:
    return "yes" if v is True else ("no" if v in (False, None) else str(v))


def _line(label: str, value: str) -> str:
    return f"  {label} {'.' * max(2, 28 - len(label))} {value}"


def report(caps: Optional[dict] = None) -> str:
    """A readable summary of ``capability.probe()`` (runs the probe unless given one)."""
    c = caps if caps is not None else capability.probe()
    from .backend import kernel_profile

    out: List[str] = [f"nfteach doctor — live backend on Linux {c['kernel']} (profile {kernel_profile(c['kernel'])})"]
    out.append(_line("root", _yn(c["root"])))
    out.append(_line("live lab can start", "yes" if c["live_ok"] else f"no: {c['why_not']}"))
    versions = c.get("versions", {})
    for tool, path in c["tools"].items():
        if path:
            out.append(_line(tool, versions.get(tool) or path))
        else:
            out.append(_line(tool, "not installed"))
    if "iptables_backends" in c:
        out.append(_line("iptables backends", ", ".join(c["iptables_backends"]) or "none"))
    for kind, res in c.get("bpftrace", {}).items():
        out.append(_line(f"bpftrace {kind}", "attaches" if res is True else f"no: {res}"))
    if "tracefs" in c:
        out.append(_line("tracefs", "yes (mounted privately per command)" if c["tracefs"] else "no"))
        out.append(_line("ftrace function filter", "yes" if c["ftrace_function"] else f"no: {c.get('ftrace_error')}"))
    out.append(_line("/proc/kcore", _yn(c["kcore"])))
    out.append(_line("vmlinux debug info", c["vmlinux"] or "not found"))
    out.append(_line("nft list hooks", "yes" if c.get("nft_list_hooks") else "no (CONFIG_NETFILTER_NETLINK_HOOK off?)"))
    out.append(_line("loadable modules", "yes" if c["modules"] else "no (CONFIG_MODULES off; modprobe nf_conntrack is emulated)"))
    missing = []
    if not c.get("nft_list_hooks") and not c.get("drgn_live"):
        missing.append("list-nf-hooks")
    if not c.get("drgn_live"):
        missing.append("drgn")
    if c.get("bpftrace", {}).get("kprobe") is not True:
        missing.append("bpftrace kprobes")
    if not c.get("ftrace_function"):
        missing.append("function_graph/trace-cmd")
    if missing:
        out.append(f"  not on live here: {', '.join(missing)} — use --backend vm for these")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(report())
