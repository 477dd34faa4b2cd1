"""Run a tool with tracefs mounted and no limit on locked memory, without touching the
machine's mounts.

Used as ``ip netns exec NS python3 tracefs_exec.py TOOL ARGS...``. ``ip netns exec`` has
already given this process a mount namespace of its own (``/`` made rslave, a fresh
``/sys``), so mounting tracefs at ``/sys/kernel/tracing`` here is seen by this process and
the tool it execs, and by nothing else. It lifts RLIMIT_MEMLOCK (bpftrace raises it
itself, which needs CAP_SYS_RESOURCE, a capability its sandbox does not give; without it
bpftrace's feature probes fail). Then it execs TOOL (an argument list, no shell; usually
bwrap, see ``sandbox.py``).
"""
import ctypes
import os
import resource
import sys


def mount(source, target, fstype):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    if libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        return ctypes.get_errno()
    return 0


def main():
    if os.path.isdir("/sys/kernel/tracing") and not os.listdir("/sys/kernel/tracing"):
        mount("nodev", "/sys/kernel/tracing", "tracefs")
    if os.path.isdir("/sys/kernel/debug") and not os.listdir("/sys/kernel/debug"):
        mount("nodev", "/sys/kernel/debug", "debugfs")
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass
    argv = sys.argv[1:]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
