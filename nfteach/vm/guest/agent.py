"""The command agent that runs inside the QEMU guest, on the serial console.

Runs with the guest's python3 (stdlib only). It reads one request per line from the
serial port (base64 of a JSON object) and answers each with one framed line::

    @@NFT@@ <base64 of a JSON object> @@END@@

Commands are argument lists given to ``subprocess`` as they are: nothing goes through
a shell. Commands for the ``host`` machine run under ``ip netns exec host``. Before
every ``run``/``spawn`` the agent asks the session client (in ``host``) to exchange one
keystroke on the tcp/22 session, as docs/lab-contract.md requires.
"""
import base64
import fcntl
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import tty

SESSION_SOCK = "/run/nfteach-session.sock"
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}
# bpftrace 0.17 finds no BTF on kernels without module BTF (5.10: only
# /sys/kernel/btf/vmlinux), so struct casts fail; pointing it at the file works.
try:
    if os.listdir("/sys/kernel/btf") == ["vmlinux"]:
        ENV["BPFTRACE_BTF"] = "/sys/kernel/btf/vmlinux"
except OSError:
    pass


_session = None


def tick():
    """One synchronous keystroke on the session; returns an error text or None.

    The unix connection to the session client stays open between commands.
    """
    global _session
    for _attempt in (1, 2):
        try:
            if _session is None:
                _session = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                _session.settimeout(10)
                _session.connect(SESSION_SOCK)
            _session.sendall(b"t")
            ans = b""
            while not ans.endswith(b"\n"):
                data = _session.recv(64)
                if not data:
                    raise OSError("session client closed the connection")
                ans += data
            return None if ans.startswith(b"ok") else ans.decode(errors="replace").strip()
        except OSError as e:
            if _session is not None:
                _session.close()
                _session = None
            err = str(e)
    return err


def full_argv(ns, argv):
    # stdbuf -oL: stdout line-buffered as on a terminal, so stdout and stderr pieces
    # come in the order a person at a terminal sees them (same as the live backend)
    return (["ip", "netns", "exec", "host"] if ns == "host" else []) + ["stdbuf", "-oL"] + list(argv)


def _in_epoll(pid):
    """Is ``pid`` blocked in epoll_wait? (/proc/PID/wchan reads 0 on 5.10, so: stack, syscall)."""
    for name in ("stack", "wchan"):
        try:
            with open(f"/proc/{pid}/{name}") as f:
                if "epoll" in f.read():
                    return True
        except OSError:
            pass
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] in ("232", "281", "441")  # epoll_wait, epoll_pwait(2)
    except (OSError, IndexError):
        return False


class Collector:
    """Reads a process's stdout and stderr, keeping the order of the pieces."""

    def __init__(self, proc):
        self.proc = proc
        self.chunks = []
        self.cond = threading.Condition()
        self.finished = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout.fileno(), selectors.EVENT_READ, "out")
        sel.register(self.proc.stderr.fileno(), selectors.EVENT_READ, "err")
        open_ = 2
        while open_:
            events = sorted(sel.select(), key=lambda e: e[0].data != "out")  # stdout first
            for key, _ in events:
                try:
                    data = os.read(key.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fd)
                    open_ -= 1
                    continue
                with self.cond:
                    if self.chunks and self.chunks[-1][0] == key.data:
                        self.chunks[-1][1].extend(data)
                    else:
                        self.chunks.append((key.data, bytearray(data)))
                    self.cond.notify_all()
        self.proc.wait()
        with self.cond:
            self.finished = True
            self.cond.notify_all()

    def text(self):
        with self.cond:
            return "".join(bytes(b).decode("utf-8", "replace") for _, b in self.chunks)

    def result(self):
        with self.cond:
            chunks = [[s, bytes(b).decode("utf-8", "replace")] for s, b in self.chunks]
        return {"chunks": chunks, "status": self.proc.returncode}

    def wait(self, timeout):
        end = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not self.finished:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.cond.wait(left)
        return True


def popen(ns, argv):
    return subprocess.Popen(
        full_argv(ns, argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=ENV, cwd="/root", start_new_session=True,
    )


class Agent:
    def __init__(self, port):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.jobs = {}
        self.buf = b""

    def send(self, obj):
        line = b"\r\n@@NFT@@ " + base64.b64encode(json.dumps(obj).encode()) + b" @@END@@\r\n"
        view = memoryview(line)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def lines(self):
        while True:
            while b"\n" not in self.buf:
                data = os.read(self.fd, 4096)
                if not data:
                    return
                self.buf += data
            line, _, self.buf = self.buf.partition(b"\n")
            line = line.strip()
            if line:
                yield line

    def serve(self):
        global _session
        try:  # open the session connection now, before any learner command
            _session = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            _session.settimeout(10)
            _session.connect(SESSION_SOCK)
        except OSError:
            _session = None
        self.send({"op": "ready", "release": os.uname().release, "pid": os.getpid()})
        for line in self.lines():
            try:
                req = json.loads(base64.b64decode(line))
            except ValueError:
                continue  # noise on the line (a kernel message): ignore
            try:
                ans = getattr(self, "op_" + req["op"])(req)
            except Exception as e:  # noqa: BLE001 - report to the host, keep serving
                ans = {"error": f"{type(e).__name__}: {e}"}
            ans["id"] = req.get("id")
            self.send(ans)

    # -- operations -------------------------------------------------------------
    def op_ping(self, req):
        return {"ok": True}

    def op_resume(self, req):
        """First request to a guest restored from a saved state (nfteach/vm/saved.py): what
        every lab has of its own. The wall clock is the host's (the saved one stopped when
        the guest was saved), and host randomness is mixed into the kernel's pool and the
        CRNG reseeded, so labs restored from one saved state do not draw the same numbers."""
        time.clock_settime(time.CLOCK_REALTIME, float(req["time"]))
        seed = base64.b64decode(req.get("seed", ""))
        if seed:  # (fcntl, struct: imported before the guest is saved, not loaded per lab)
            rndaddentropy, rndreseedcrng = 0x40085203, 0x5207  # _IOW('R', 3, int[2]), _IO('R', 7)
            fd = os.open("/dev/random", os.O_WRONLY)
            try:
                fcntl.ioctl(fd, rndaddentropy, struct.pack("ii", len(seed) * 8, len(seed)) + seed)
                fcntl.ioctl(fd, rndreseedcrng)
            finally:
                os.close(fd)
        return {"release": os.uname().release, "pid": os.getpid()}

    def op_run(self, req):
        err = tick() if req.get("tick", True) else None
        name = req["argv"][0]
        if not shutil.which(name, path=ENV["PATH"]):
            return {"chunks": [["err", f"{name}: command not found\n"]], "status": 127, "tick": err}
        proc = popen(req.get("ns", "vm"), req["argv"])
        col = Collector(proc)
        if not col.wait(req.get("timeout_s", 600)):
            os.killpg(proc.pid, signal.SIGKILL)
            col.wait(10)
            res = col.result()
            res["timed_out"] = True
        else:
            res = col.result()
        res["tick"] = err
        return res

    def op_spawn(self, req):
        err = tick() if req.get("tick", True) else None
        proc = popen(req.get("ns", "vm"), req["argv"])
        col = Collector(proc)
        self.jobs[req["job"]] = col
        ready = req.get("ready")
        if ready:
            end = time.monotonic() + req.get("ready_timeout", 120)
            with col.cond:
                while not col.finished and time.monotonic() < end:
                    if ready in "".join(bytes(b).decode("utf-8", "replace") for _, b in col.chunks):
                        break
                    col.cond.wait(0.2)
            # bpftrace prints "Attaching" before it attaches: wait until it sleeps in its
            # event loop (epoll), so a packet sent next is seen and a signal is handled
            while not col.finished and time.monotonic() < end:
                if _in_epoll(proc.pid):
                    break
                time.sleep(0.2)
        return {"pid": proc.pid, "finished": col.finished, "tick": err}

    def op_signal(self, req):
        col = self.jobs.get(req["job"])
        if col and not col.finished:
            try:
                os.kill(col.proc.pid, req["sig"])
            except ProcessLookupError:
                pass
        return {"ok": True}

    def op_wait(self, req):
        col = self.jobs.get(req["job"])
        if col is None:
            return {"error": "no such job"}
        if not col.wait(req.get("wait_s")):
            return {"timed_out": True}
        del self.jobs[req["job"]]
        return col.result()

    def op_write(self, req):
        path = req["path"]
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(req["data"]))
        os.chmod(path, req.get("mode", 0o644))
        return {"ok": True}


if __name__ == "__main__":
    Agent(sys.argv[1] if len(sys.argv) > 1 else "/dev/ttyS0").serve()
