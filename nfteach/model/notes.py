"""Fixed texts that more than one backend prints, so they agree word for word."""

BUILTIN_CT_TABLE = "nfteach_ct"
BUILTIN_CT_CHAIN = "enable_hooks"

BUILTIN_MODPROBE_NOTE = (
    "nfteach: nf_conntrack is built into this kernel; emulating enable_hooks=1 with a "
    f"conntrack user (table inet {BUILTIN_CT_TABLE}) in each lab namespace"
)

#: nft argument lists (after "nft") that the lab runs in each namespace to emulate
#: `modprobe nf_conntrack enable_hooks=1` / `rmmod nf_conntrack` on a built-in kernel.
BUILTIN_ENABLE_HOOKS_NFT = (
    ["add", "table", "inet", BUILTIN_CT_TABLE],
    ["add", "chain", "inet", BUILTIN_CT_TABLE, BUILTIN_CT_CHAIN],
    ["add", "rule", "inet", BUILTIN_CT_TABLE, BUILTIN_CT_CHAIN, "ct", "state", "established"],
)
BUILTIN_DISABLE_HOOKS_NFT = (["delete", "table", "inet", BUILTIN_CT_TABLE],)

LAB = {
    "vm": {"addr": "192.168.122.204", "prefix": 24, "ifname": "eth0"},
    "host": {"addr": "192.168.122.1", "prefix": 24, "ifname": "eth0"},
    "session_port": 22,
}

#: The lab's command vocabulary (README, "The lab"): every backend accepts these names and
#: nothing else, so an unknown command gets the same one-line error everywhere.
LAB_COMMANDS = (
    "conntrack", "iptables", "iptables-legacy", "iptables-nft", "nft", "modprobe", "rmmod",
    "lsmod", "modinfo", "nc", "list-nf-hooks", "drgn", "bpftrace", "trace-cmd", "cat",
    "sysctl", "dmesg", "uname", "ip",
)


def printable(text: str, limit: int = 40) -> str:
    """Learner text made safe to echo on a terminal: control characters escaped, length capped."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def unknown_command(name: str) -> str:
    shown = printable(name)
    return (f"nfteach: {shown}: not a lab command; supported: "
            f"{', '.join(LAB_COMMANDS)}, and kill/wait/sleep/jobs")
