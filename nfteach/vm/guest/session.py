"""The article's SSH session on tcp/22, inside the QEMU guest (python3 stdlib only).

``session.py server`` (in the guest's root namespace, the lab's ``vm``) listens on
tcp/22: the first connection is the session and every byte is echoed back; any other
connection is read until EOF and closed (so ``nc -z`` to port 22 ends in TIME_WAIT).

``session.py client`` (in namespace ``host``) opens the session and serves
``/run/nfteach-session.sock``: each request there exchanges one keystroke, synchronously
(send 1 byte, read the echo, ACK at once with TCP_QUICKACK), then answers ``ok``.
"""
import os
import socket
import sys
import threading

SESSION_SOCK = "/run/nfteach-session.sock"
VM = ("192.168.122.204", 22)


def _echo(conn):
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)


def _drain(conn):
    with conn:
        while conn.recv(4096):
            pass


def server():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 22))
    s.listen(16)
    open("/run/nfteach-server.ready", "w").close()
    first = True
    while True:
        conn, _ = s.accept()
        threading.Thread(target=_echo if first else _drain, args=(conn,), daemon=True).start()
        first = False


def client():
    c = socket.create_connection(VM, timeout=30)
    c.settimeout(None)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        os.unlink(SESSION_SOCK)
    except FileNotFoundError:
        pass
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.bind(SESSION_SOCK + ".tmp")
    os.rename(SESSION_SOCK + ".tmp", SESSION_SOCK)
    u.listen(4)
    while True:
        r, _ = u.accept()
        threading.Thread(target=_serve_ticks, args=(r, c), daemon=True).start()


def _serve_ticks(r, c):
    """One tick per byte on a kept-open unix connection (no connect per command, so the
    lab adds no socket set-up/tear-down of its own to what the learner traces)."""
    with r:
        while r.recv(1):
            try:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                c.sendall(b"k")
                got = c.recv(1)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                r.sendall(b"ok\n" if got == b"k" else b"session closed\n")
            except OSError as e:
                r.sendall(f"session error: {e}\n".encode())

if __name__ == "__main__":
    {"server": server, "client": client}[sys.argv[1]]()
