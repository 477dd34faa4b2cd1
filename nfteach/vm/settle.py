"""Let a background bpftrace catch up with its events before ``kill -INT %1`` reaches it.

bpftrace formats its output in userspace, after the probes fired: bpftrace 0.23 resolves
``func`` lazily, and the first resolution reads the kernel's symbol table (160,000 lines of
/proc/kallsyms on Debian 6.12: 0.5-1 s under TCG, a few ms on hardware). When SIGINT comes
in the middle of that, bpftrace 0.23 prints the event it is on and drops the rest of the
batch it read from the ring buffer (its printer returns early once the exit signal is seen),
so ``nc -w 1`` followed at once by ``kill -INT %1`` printed one SYN line of three, although
the probe had counted all of them. A person at a terminal presses Ctrl-C seconds later and
sees every line; so the lab delivers the signal once bpftrace is idle in its event loop
(epoll_wait) again, as it would be by then -- bounded, so a tool that never idles is
still stopped.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

#: x86_64 numbers of epoll_wait, epoll_pwait, epoll_pwait2 (the guest is x86_64)
EPOLL_SYSCALLS = ("232", "281", "441")
#: signals bpftrace catches to stop cleanly (run_bpftrace.cpp); SIGKILL is not waited for
CLEAN_STOP = (2, 15)  # SIGINT, SIGTERM
#: consecutive idle samples that count as "caught up" (one sample can land between two
#: polls of a busy loop), and the longest the signal is held back
IDLE_SAMPLES = 2
LIMIT_S = 20.0


def waits_for(argv, signum: int) -> bool:
    """Does stopping this job with ``signum`` wait until it is idle first?"""
    return bool(argv) and argv[0] == "bpftrace" and signum in CLEAN_STOP


def in_epoll(syscall_line: str) -> bool:
    """``/proc/PID/syscall`` of a task blocked in epoll_wait (not ``running``, not another call)."""
    fields = syscall_line.split()
    return bool(fields) and fields[0] in EPOLL_SYSCALLS


def until_idle(read_syscall: Callable[[], Optional[str]], limit_s: float = LIMIT_S,
               pause_s: float = 0.05, clock=time.monotonic, sleep=time.sleep) -> bool:
    """Sample ``read_syscall()`` (the job's /proc/PID/syscall, None once it is gone) until it
    was in epoll_wait ``IDLE_SAMPLES`` times in a row; False if ``limit_s`` passed first."""
    end, streak = clock() + limit_s, 0
    while True:
        line = read_syscall()
        if line is None:
            return True  # ended on its own: nothing left to wait for
        streak = streak + 1 if in_epoll(line) else 0
        if streak >= IDLE_SAMPLES:
            return True
        if clock() >= end:
            return False
        sleep(pause_s)
