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

The signal can still be missed: bpftrace 0.17 (Debian 12's) leaves its event loop only when
SIGINT interrupts ``epoll_wait`` itself (``poll_perf_events`` in bpftrace.cpp); one that lands
in the instant between two waits (each ends after 100 ms) sets its flag and is ignored until
another event arrives, so the tool runs on with no event to come. At a terminal the person
presses Ctrl-C again; so does the lab (``press_again``) when, after the signal, bpftrace is
still idle in ``epoll_wait`` sample after sample. Only then: once the event loop is left,
bpftrace 0.17 restores the default SIGINT action before it prints its maps, and a second
signal there would kill it before it prints them.
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
#: after a clean-stop signal: how long the job may take before it is looked at, how long
#: it must then sit in epoll_wait (sample after sample) to count as having missed the
#: signal (its final drain of the ring buffer ends 100 ms after the last event), and how
#: many times the signal is given again
GRACE_S = 1.0
STUCK_S = 0.5
PRESSES = 3


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


def press_again(ended_within: Callable[[float], bool], read_syscall: Callable[[], Optional[str]],
                resend: Callable[[], None], grace_s: float = GRACE_S, stuck_s: float = STUCK_S,
                presses: int = PRESSES, pause_s: float = 0.1, clock=time.monotonic, sleep=time.sleep) -> int:
    """After a clean-stop signal: while the job runs on, idle in ``epoll_wait`` on every
    sample for ``stuck_s``, give it the signal again (``resend()``), at most ``presses``
    times. ``ended_within(s)`` waits up to s seconds for the job to end. Returns the number
    of signals given again."""
    given = 0
    while given < presses and not ended_within(grace_s):
        if not _idle_for(read_syscall, stuck_s, pause_s, clock, sleep):
            return given  # ended, or busy on its way out: the caller's wait covers the rest
        resend()
        given += 1
    return given


def _idle_for(read_syscall, stuck_s, pause_s, clock, sleep) -> bool:
    """Was the job in epoll_wait on every sample for ``stuck_s``?"""
    since = clock()
    while True:
        line = read_syscall()
        if line is None or not in_epoll(line):
            return False
        if clock() - since >= stuck_s:
            return True
        sleep(pause_s)
