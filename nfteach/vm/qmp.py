"""A minimal QMP client: one connection to one of a guest's QMP sockets.

Used to save a booted guest (``stop``, ``migrate`` to a file descriptor passed with
``getfd``) and to start a restored one (``query-status``, ``cont``). drgn opens its own
QMP connections to read guest memory; this client closes its connection when done, so
the socket is free again for drgn.

>>> with Qmp(qemu.qmp_paths()[-1]) as q:                       # doctest: +SKIP
...     q.execute("query-status")["status"]
'running'
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Optional


class QmpError(RuntimeError):
    """QEMU answered a command with an error, or the connection failed."""


class Qmp:
    def __init__(self, path: Path, timeout: float = 30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        while True:  # QEMU creates the socket early, but may accept a moment later
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > end:
                    raise QmpError(f"QMP socket {path} does not accept connections") from None
                time.sleep(0.02)
        self.buf = b""
        self._read()  # the greeting
        self.execute("qmp_capabilities")

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _read(self) -> dict:
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except OSError as e:
                raise QmpError(f"QMP connection failed: {e}") from None
            if not data:
                raise QmpError("QEMU closed the QMP connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def execute(self, command: str, fd: Optional[int] = None, **arguments) -> dict:
        """Run one command and return its ``return`` value; events are skipped.
        ``fd`` is passed along with the command (SCM_RIGHTS), as ``getfd`` needs."""
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        data = json.dumps(msg).encode() + b"\n"
        try:
            if fd is None:
                self.sock.sendall(data)
            else:
                socket.send_fds(self.sock, [data], [fd])
        except OSError as e:
            raise QmpError(f"QMP connection failed: {e}") from None
        while True:
            ans = self._read()
            if "return" in ans:
                return ans["return"]
            if "error" in ans:
                raise QmpError(f"{command}: {ans['error'].get('desc', ans['error'])}")

    def wait_status(self, wanted: tuple, timeout: float, alive=lambda: True) -> str:
        """Poll ``query-status`` until the run state is one of ``wanted``; return it."""
        end = time.monotonic() + timeout
        while True:
            status = self.execute("query-status")["status"]
            if status in wanted:
                return status
            if not alive():
                raise QmpError("QEMU exited")
            if time.monotonic() > end:
                raise QmpError(f"the guest stayed {status!r} for {timeout:.0f} s")
            time.sleep(0.01)
