"""Running real tools as argument lists, capturing stdout and stderr in the order printed.

Nothing here ever uses a shell: every process is started from a list, usually
``ip netns exec NS bwrap ... -- TOOL ARGS...`` (see ``sandbox.py``). The pid we hold is
bwrap's; a signal for the tool (``kill -INT %1``) goes to the tool's own pid, which bwrap
reports on its info pipe; stopping a command for good kills bwrap, and with it the sandbox.
"""
from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import threading
import time
from typing import Callable, List, Optional, Sequence, Tuple

from ..model.backend import Job, Output
from .sandbox import INFO_FD, SECCOMP_FD, SandboxInfo

#: the environment every lab command gets: C locale, no inherited surprises
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "LANG": "C",
    "HOME": "/root",
    "TERM": "dumb",
}

DEFAULT_TIMEOUT = 120.0


def _popen(argv: Sequence[str]) -> subprocess.Popen:
    """Start ``argv``; a sandboxed one (``INFO_FD`` in it) gets ``proc.sandbox``, a SandboxInfo."""
    argv = list(argv)
    info_r = info_w = None
    extra = []
    for i, a in enumerate(argv):
        if a.startswith(SECCOMP_FD):  # bwrap reads the compiled filter from this fd
            fd = os.open(a[len(SECCOMP_FD):], os.O_RDONLY)
            extra.append(fd)
            argv[i] = str(fd)
    if INFO_FD in argv:
        info_r, info_w = os.pipe()
        argv[argv.index(INFO_FD)] = str(info_w)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(ENV),
            start_new_session=True,
            close_fds=True,
            pass_fds=((info_w,) if info_w is not None else ()) + tuple(extra),
        )
    except BaseException:
        for fd in (info_r, info_w, *extra):
            if fd is not None:
                os.close(fd)
        raise
    for fd in (info_w, *extra):
        if fd is not None:
            os.close(fd)
    proc.sandbox = SandboxInfo(info_r) if info_r is not None else None
    return proc


def signal_tool(proc: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the tool (inside its sandbox, when it has one), by pid."""
    if proc.poll() is not None:
        return
    box = getattr(proc, "sandbox", None)
    target = box.tool_pid() if box is not None else proc.pid
    try:
        if target is not None:
            os.kill(target, signum)
        elif signum == signal.SIGKILL:
            proc.kill()
    except ProcessLookupError:
        pass


def _collect(proc: subprocess.Popen, chunks: List[Tuple[str, str]], deadline: Optional[float]) -> bool:
    """Read both pipes until EOF, appending ("out"|"err", text) pieces; False on timeout."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    open_pipes = 2
    decoders = {s: codecs.getincrementaldecoder("utf-8")(errors="replace") for s in ("out", "err")}
    try:
        while open_pipes:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if deadline is not None and timeout == 0.0:
                return False
            events = sel.select(timeout)
            if not events and deadline is not None and time.monotonic() >= deadline:
                return False
            for key, _ in events:
                data = os.read(key.fileobj.fileno(), 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                text = decoders[key.data].decode(data)
                if not text:
                    continue
                if chunks and chunks[-1][0] == key.data:
                    chunks[-1] = (key.data, chunks[-1][1] + text)
                else:
                    chunks.append((key.data, text))
        return True
    finally:
        sel.close()


def _finish(proc: subprocess.Popen) -> int:
    for f in (proc.stdout, proc.stderr):
        try:
            f.close()
        except OSError:
            pass
    status = proc.wait()
    box = getattr(proc, "sandbox", None)
    if box is not None:
        box.close()
    return status


def run_argv(argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT, name: str = "") -> Output:
    """Run ``argv`` to completion; stdout and stderr interleaved in ``Output.chunks``."""
    try:
        proc = _popen(argv)
    except OSError as e:
        return Output.of(stderr=f"nfteach: cannot run {argv[0]}: {e.strerror}\n", status=127)
    chunks: List[Tuple[str, str]] = []
    finished = _collect(proc, chunks, time.monotonic() + timeout)
    if not finished:
        _stop(proc)
        chunks.append(("err", f"nfteach: {name or os.path.basename(argv[0])} did not finish within {timeout:g} s and was stopped; "
                              "run it in the background with ' &' and stop it with kill -INT %N\n"))
        status = _finish(proc)
        return Output(tuple(chunks), 124 if status >= 0 else 128 - status)
    status = _finish(proc)
    return Output(tuple(chunks), status if status >= 0 else 128 - status)


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT, then SIGTERM to the tool; then SIGKILL to the pid we started (bwrap: the
    whole sandbox dies with it)."""
    for sig, wait in ((signal.SIGINT, 2), (signal.SIGTERM, 2), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            if sig == signal.SIGKILL:
                proc.kill()
            else:
                signal_tool(proc, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class LiveJob(Job):
    """A tool running in the background in a lab namespace (``CMD &``)."""

    def __init__(self, machine: str, argv: Sequence[str], full_argv: Sequence[str],
                 on_exit: Optional[Callable[[int], None]] = None, timeout: float = DEFAULT_TIMEOUT):
        self.machine = machine
        self.timeout = timeout
        self.argv = list(argv)
        self._chunks: List[Tuple[str, str]] = []
        self._proc = _popen(full_argv)
        self.pid = self._proc.pid
        self._on_exit = on_exit
        self._status: Optional[int] = None
        self._thread = threading.Thread(target=self._reader, name=f"nfteach-job-{self.pid}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        _collect(self._proc, self._chunks, None)
        st = _finish(self._proc)
        self._status = st if st >= 0 else 128 - st
        if self._on_exit:
            self._on_exit(self.pid)

    def signal(self, signum: int) -> None:
        signal_tool(self._proc, signum)

    def wait(self, timeout: float | None = None) -> Output:
        """The job's output once it ended; a job still running after ``timeout`` (default:
        the backend's command limit, as on vm) is stopped, and the output says so."""
        limit = self.timeout if timeout is None else timeout
        self._thread.join(limit)
        chunks = []
        if self._thread.is_alive():
            _stop(self._proc)
            self._thread.join(10)
            chunks = [("err", f"nfteach: {self.argv[0]} did not end within {limit:g} s and was stopped\n")]
        return Output(tuple(self._chunks) + tuple(chunks), self._status if self._status is not None else 124)

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait_for(self, text: str, timeout: float) -> bool:
        """Block until the job printed ``text`` (True) or ended / timed out (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in t for _, t in list(self._chunks)):
                return True
            if self.done():
                return False
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        _stop(self._proc)
        self._thread.join(10)
