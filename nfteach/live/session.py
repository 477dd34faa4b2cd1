"""The lab's SSH-like session on tcp/22, with one synchronous keystroke before each command.

Two helper scripts (``helpers/echo_server.py`` in ``vm``, ``helpers/session_client.py`` in
``host``) are started with ``ip netns exec NS python3 SCRIPT ARGS`` (argument lists) and
driven over their stdin/stdout:

1. ``keystroke()`` writes ``k`` to the client; the client sends one byte and waits for the
   echo, ACKing at once (``TCP_QUICKACK``); it prints ``ok N``.
2. The server, after echoing, waits until the client's ACK has arrived
   (``tcp_info.tcpi_unacked == 0``) and prints ``acked N``. Conntrack in ``vm`` has seen
   that ACK before the socket did, so when ``keystroke()`` returns the exchange is done.

Both helpers exit on EOF on stdin, so they die with the lab even when it is SIGKILLed.
"""
from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

from ..model.notes import LAB

log = logging.getLogger(__name__)

HELPERS = Path(__file__).resolve().parent / "helpers"


class _LineProc:
    """A helper process whose stdout we read line by line with a timeout."""

    def __init__(self, argv: List[str]):
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"},
        )
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def readline(self, timeout: float) -> Optional[str]:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")

    def stderr_text(self) -> str:
        try:
            fd = self.proc.stderr.fileno()
            r, _, _ = select.select([fd], [], [], 0)
            return os.read(fd, 65536).decode(errors="replace") if r else ""
        except (OSError, ValueError):
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # by pid: Popen.kill signals exactly this child
                self.proc.wait(timeout=5)
        for f in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            try:
                if f:
                    f.close()
            except OSError:
                pass


class Session:
    """The tcp/22 session from ``host`` to ``vm``."""

    def __init__(self, exec_prefix: Callable[[str], List[str]], record: Callable[[int], None]):
        self._prefix = exec_prefix
        self._record = record
        self.server: Optional[_LineProc] = None
        self.client: Optional[_LineProc] = None
        self.sent = 0
        self.sport: Optional[int] = None
        self.healthy = False

    def start(self) -> None:
        port = str(LAB["session_port"])
        py = sys.executable or "python3"
        self.server = _LineProc(
            [*self._prefix("vm"), py, "-I", "-u", str(HELPERS / "echo_server.py"), LAB["vm"]["addr"], port]
        )
        self._record(self.server.pid)
        line = self.server.readline(10)
        if line != "listening":
            raise RuntimeError(f"session server did not start: {line!r} {self.server.stderr_text()}")
        self.client = _LineProc(
            [*self._prefix("host"), py, "-I", "-u", str(HELPERS / "session_client.py"), LAB["vm"]["addr"], port]
        )
        self._record(self.client.pid)
        line = self.client.readline(10)
        if not line or not line.startswith("connected "):
            raise RuntimeError(f"session client did not connect: {line!r} {self.client.stderr_text()}")
        self.sport = int(line.split()[1])
        if self.server.readline(5) != "session":
            raise RuntimeError("session server did not accept the session")
        self.healthy = True

    def keystroke(self, timeout: Optional[float] = None) -> bool:
        """One synchronous keystroke; False (and a log line) when it could not complete.

        Waits up to 15 s while the session is healthy (a loaded 2-core CI machine can be
        slow), 1 s once a keystroke has failed (e.g. the learner dropped tcp/22), so a
        blocked session does not make every command slow. Late answers are recognised
        by their byte count and skipped.
        """
        if not (self.server and self.client) or self.client.proc.poll() is not None:
            return False
        if timeout is None:
            timeout = 15.0 if self.healthy else 1.0
        self.sent += 1
        self.client.send("k")
        deadline = time.monotonic() + timeout
        ok = self._wait_for(self.client, ("ok",), deadline) and self._wait_for(self.server, ("acked",), deadline)
        if not ok:
            log.warning("session keystroke %d did not complete within %.0f s", self.sent, timeout)
        self.healthy = ok
        return ok

    def _wait_for(self, proc: _LineProc, words, deadline: float) -> bool:
        while True:
            line = proc.readline(max(0.0, deadline - time.monotonic()))
            if line is None:
                return False
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) >= self.sent:
                return parts[0] in words

    def pids(self) -> List[int]:
        return [p.pid for p in (self.server, self.client) if p]

    def stop(self) -> None:
        for p in (self.client, self.server):
            if p:
                p.stop()
        self.client = self.server = None
