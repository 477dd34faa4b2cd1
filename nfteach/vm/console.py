"""Talk to the guest agent (``guest/agent.py``) over QEMU's serial console socket.

Requests are one line each (base64 of JSON); answers are framed as
``@@NFT@@ <base64 JSON> @@END@@`` so boot messages and any kernel output on the
console are skipped. Everything the console printed is kept in ``console.log``.
"""
from __future__ import annotations

import base64
import itertools
import json
import logging
import re
import socket
import time
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger("nfteach.vm")

FRAME = re.compile(rb"@@NFT@@ ([A-Za-z0-9+/=]*) @@END@@")
#: what a guest kernel in trouble prints on the console (loglevel=1 still shows these)
TROUBLE = re.compile(r"Kernel panic|BUG: |Oops|soft lockup|hung_task|rcu_.*stall|Out of memory|general protection")


class ConsoleClosed(ConnectionError):
    """The serial console closed: QEMU is gone."""


class Console:
    def __init__(self, path: Path, log_path: Optional[Path] = None,
                 alive: Optional[Callable[[], bool]] = None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        end = time.monotonic() + 10
        while True:  # QEMU binds the socket a moment before it listens
            try:
                self.sock.connect(str(path))
                break
            except ConnectionRefusedError:
                if time.monotonic() > end or not (alive or (lambda: True))():
                    raise
                time.sleep(0.005)
        self.buf = b""
        self.ids = itertools.count(1)
        self.log_path = log_path
        self.logf = open(log_path, "ab") if log_path else None
        self.alive = alive or (lambda: True)

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.logf:
                self.logf.close()
                self.logf = None

    def _read_frame(self, timeout: Optional[float]) -> dict:
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            m = FRAME.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                try:
                    return json.loads(base64.b64decode(m.group(1)))
                except ValueError:
                    log.warning("vm: garbled answer on the console, skipped")
                    continue
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("no answer from the guest agent")
            self.sock.settimeout(min(left, 1.0) if left is not None else 1.0)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if not self.alive():
                    raise ConsoleClosed("QEMU exited") from None
                continue
            except OSError as e:
                raise ConsoleClosed(str(e)) from None
            if not data:
                raise ConsoleClosed("the serial console closed")
            if self.logf:
                self.logf.write(data)
                self.logf.flush()
            # keep only what may hold a frame
            self.buf = (self.buf + data)[-(64 << 20):]

    def kernel_trouble(self, limit: int = 3) -> str:
        """The guest kernel's panic/oops/lockup lines in the console log, if it printed any."""
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - (256 << 10)))
                text = FRAME.sub(b"", f.read()).decode("utf-8", "replace")
        except OSError:
            return ""
        hits = [ln.strip() for ln in text.splitlines() if TROUBLE.search(ln)]
        return " | ".join(hits[:limit])

    def wait_ready(self, timeout: float) -> dict:
        while True:
            ans = self._read_frame(timeout)
            if ans.get("op") == "ready":
                return ans

    def write_file(self, path: str, text: str, timeout: float = 60) -> dict:
        """Write ``text`` to ``path`` in the guest (executable if it starts with ``#!``)."""
        data = base64.b64encode(text.encode()).decode()
        return self.request("write", timeout=timeout, path=path, data=data, mode=0o755 if text.startswith("#!") else 0o644)

    def request(self, op: str, timeout: Optional[float] = 600, **fields) -> dict:
        rid = next(self.ids)
        line = base64.b64encode(json.dumps(dict(fields, op=op, id=rid)).encode()) + b"\n"
        try:
            self.sock.sendall(line)
        except OSError as e:
            raise ConsoleClosed(str(e)) from None
        while True:
            ans = self._read_frame(timeout)
            if ans.get("id") == rid:
                if "error" in ans:
                    raise RuntimeError(f"guest agent: {ans['error']}")
                return ans
