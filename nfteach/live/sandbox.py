"""The confinement every live lab command runs in: bubblewrap (``bwrap``) inside the lab's
network namespace.

``ip netns exec NS`` puts a command into the lab machine's network namespace; ``bwrap``
then gives it a world of its own, so what a tool can reach does not depend on which
options it was given (``docs/lab-contract.md``, "Security model"):

* a mount namespace whose root is an empty tmpfs with only ``/usr`` (and the ``/bin``,
  ``/lib`` links), a short list of harmless ``/etc`` files, ``/sys`` and the lab's own
  files directory, all **read-only**; no ``/root``, ``/home``, ``/var``, ``/etc/shadow``;
* a private ``/tmp`` and ``/run`` (tmpfs) and a minimal ``/dev``: no Unix socket of the
  machine is reachable (abstract sockets belong to the network namespace, the lab's);
* a new ``/proc`` of its own PID namespace (no other process of the machine is visible or
  signalable), with ``/proc/sys`` read-only except ``/proc/sys/net`` (the lab's namespace);
* its own UTS, IPC and cgroup namespaces;
* a capability set per tool (:data:`CAPS`), never ``CAP_SYS_MODULE`` or ``CAP_SYS_ADMIN``;
  bwrap sets ``no_new_privs``, so nothing the tool executes gets more.

The tool runs as PID 2 of its PID namespace (bwrap's init is PID 1); :func:`tool_pid`
finds its PID on the machine, so ``kill -INT %1`` reaches bpftrace itself, which then
prints its maps. ``--die-with-parent``: when the bwrap we started dies, everything in the
sandbox dies with it.

>>> wrap(["conntrack", "-L"], files_dir="/tmp/nfteach-x")[:2]
['bwrap', '--unshare-pid']
"""
from __future__ import annotations

import json
import os
import select
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

#: the placeholder the runner replaces by the number of the pipe bwrap writes its info to
INFO_FD = "@NFTEACH_INFO_FD@"
#: prefix of the placeholder ``@NFTEACH_SECCOMP_FD@:PATH``: the runner opens PATH, passes its fd
SECCOMP_FD = "@NFTEACH_SECCOMP_FD@:"

#: /etc entries tools read (libc, iproute2, netfilter names, alternatives links); nothing else
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "protocols", "services",
       "iproute2", "ethertypes", "nsswitch.conf", "passwd", "group", "hosts", "host.conf",
       "localtime", "os-release", "debian_version", "xtables", "netconfig")
_ROOT_LINKS = ("bin", "sbin", "lib", "lib64", "lib32", "libx32")

_NET = ("CAP_NET_ADMIN", "CAP_NET_RAW")
#: capabilities per tool; a tool not listed gets none
CAPS: Dict[str, Tuple[str, ...]] = {
    "conntrack": _NET, "nft": _NET, "iptables": _NET, "iptables-legacy": _NET,
    "iptables-nft": _NET, "ip": _NET, "sysctl": _NET,
    "nc": ("CAP_NET_BIND_SERVICE", "CAP_NET_RAW"),
    # kernel tracing (CAP_BPF, CAP_PERFMON since 5.8), kernel addresses in /proc/kallsyms
    # for stacks (CAP_SYSLOG), and CAP_SYS_ADMIN: bpftrace 0.17 reads kernel BTF by id
    # (BPF_BTF_GET_FD_BY_ID), without which `args->reason` has no type. What else
    # CAP_SYS_ADMIN allows (mounts, namespaces) the seccomp filter (DENIED) refuses.
    "bpftrace": ("CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG", "CAP_SYS_ADMIN"),
}
#: capabilities no lab command ever gets
NEVER = ("CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_BOOT",
         "CAP_MAC_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_DAC_OVERRIDE", "CAP_SYS_CHROOT")
#: system calls every sandboxed command is refused (EPERM), whatever its capabilities:
#: mounts and namespaces (the sandbox's walls), modules, kexec, the kernel log, clocks,
#: other processes' memory; compiled by libseccomp, applied by bwrap just before exec
DENIED = ("mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
          "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns", "init_module",
          "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
          "syslog", "acct", "quotactl", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
          "sethostname", "setdomainname", "open_by_handle_at", "ptrace", "process_vm_writev",
          "process_vm_readv", "iopl", "ioperm", "userfaultfd", "pidfd_getfd")


def available() -> Optional[str]:
    """None when bwrap is installed, else one line saying what to install."""
    if shutil.which("bwrap", path="/usr/local/bin:/usr/bin:/bin"):
        return None
    return "the live backend runs every lab command in a bubblewrap sandbox; apt-get install bubblewrap"


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40


#: capability numbers (linux/capability.h) of the capabilities the lab hands out
CAP_NUMBERS = {"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
               "CAP_SYS_MODULE": 16, "CAP_SYS_ADMIN": 21, "CAP_SYSLOG": 34, "CAP_PERFMON": 38, "CAP_BPF": 39}


def _own_caps(field: str = "CapPrm") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    return 0


def caps_for(tool: str) -> Tuple[str, ...]:
    """The capabilities ``tool`` gets: its :data:`CAPS` that this process has itself.

    Only those: bubblewrap, run as root, keeps *every* capability when its ``capset()``
    fails (as it does for one the process lacks), so asking for one more would give all."""
    caps = CAPS.get(tool, ())
    if "CAP_BPF" in caps and _last_cap() < 39:
        # a kernel older than 5.8 has neither CAP_BPF nor CAP_PERFMON: bpf() needs CAP_SYS_ADMIN
        caps = ("CAP_SYS_ADMIN", "CAP_SYSLOG")
    have = _own_caps()
    return tuple(c for c in caps if have >> CAP_NUMBERS[c] & 1)


def mask(caps: Sequence[str]) -> int:
    return sum(1 << CAP_NUMBERS[c] for c in caps)


def write_seccomp(path: str) -> Optional[str]:
    """Compile the :data:`DENIED` filter with libseccomp into ``path``; None, or why not.

    libseccomp's filter also kills a process that makes system calls of another
    architecture (i386 ``int 0x80``), so the list cannot be side-stepped that way."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        return f"libseccomp is not available ({e}); apt-get install libseccomp2"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    allow, eperm = 0x7FFF0000, 0x00050000 | 1  # SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(EPERM)
    ctx = lib.seccomp_init(allow)
    if not ctx:
        return "seccomp_init failed"
    try:
        for call in DENIED:
            nr = lib.seccomp_syscall_resolve_name(call.encode())
            if nr < 0:
                continue  # not a system call of this architecture
            if lib.seccomp_rule_add(ctx, eperm, nr, 0) != 0:
                return f"seccomp_rule_add({call}) failed"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if lib.seccomp_export_bpf(ctx, fd) != 0:
                return "seccomp_export_bpf failed"
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    return None


def wrap(argv: Sequence[str], files_dir: str = "", tool: Optional[str] = None,
         seccomp: str = "") -> List[str]:
    """``bwrap OPTIONS -- argv``: the sandbox for one lab command (``tool``: whose caps;
    ``seccomp``: the compiled :func:`write_seccomp` filter)."""
    a = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
         "--die-with-parent", "--info-fd", INFO_FD, "--ro-bind", "/usr", "/usr"]
    if seccomp:
        a += ["--seccomp", SECCOMP_FD + seccomp]
    for name in _ROOT_LINKS:
        p = "/" + name
        if os.path.islink(p):
            a += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            a += ["--ro-bind", p, p]
    for name in ETC:
        if os.path.lexists("/etc/" + name) and os.path.exists("/etc/" + name):
            a += ["--ro-bind", "/etc/" + name, "/etc/" + name]
    a += ["--ro-bind", "/sys", "/sys",
          "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--bind", "/proc/sys/net", "/proc/sys/net",
          "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run", "--dir", "/var/tmp"]
    if files_dir:
        a += ["--ro-bind", files_dir, files_dir]
    a += ["--chdir", "/tmp", "--cap-drop", "ALL"]
    for cap in caps_for(tool or os.path.basename(argv[0])):
        a += ["--cap-add", cap]
    return [*a, "--", *argv]


class SandboxInfo:
    """Where the tool of one sandbox runs: bwrap writes the PID of its init to the info pipe."""

    def __init__(self, fd: int):
        self._fd: Optional[int] = fd
        self.init_pid: Optional[int] = None
        self._tool: Optional[int] = None

    def _read(self, timeout: float) -> None:
        if self._fd is None:
            return
        data, deadline = b"", time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
                if not r:
                    break
                chunk = os.read(self._fd, 4096)
                if not chunk:
                    break
                data += chunk
                if data.rstrip().endswith(b"}"):
                    break  # complete (the tool may hold the pipe's other end open)
        finally:
            os.close(self._fd)
            self._fd = None
        try:
            self.init_pid = int(json.loads(data.decode() or "{}")["child-pid"])
        except (ValueError, KeyError, TypeError):
            self.init_pid = None

    def tool_pid(self, timeout: float = 5.0) -> Optional[int]:
        """PID (on the machine) of the tool: the one child of the sandbox's init; None once it ended."""
        self._read(timeout)
        if self.init_pid is None:
            return None
        deadline = time.monotonic() + timeout
        while True:
            kids = _children(self.init_pid)
            if kids is None:
                return None  # the sandbox has ended
            if self._tool is not None:
                return self._tool if self._tool in kids else None
            if kids:
                self._tool = kids[0]
                return self._tool
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _children(pid: int) -> Optional[List[int]]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return None
    return [int(x) for x in text.split()]
