"""The lab's "sshd": run inside the vm namespace as ``python3 echo_server.py ADDR PORT``.

The first connection accepted is the session: every byte it sends is echoed, and after
each echo the server waits (up to 10 s) until the peer has ACKed everything it sent
(``tcp_info.tcpi_unacked == 0``), then prints ``acked N`` (N = bytes echoed so far) on
stdout. Every other connection is read until EOF and closed, so ``nc -z ADDR 22`` ends
in TIME_WAIT. The server exits when its stdin reaches EOF (its lab is gone).
Standard library only; this file is run as a script, never imported by nfteach.
"""
import os
import selectors
import socket
import struct
import sys
import time

TCP_INFO_UNACKED = 24  # offsetof(struct tcp_info, tcpi_unacked)


def unacked(conn):
    info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", info, TCP_INFO_UNACKED)[0]


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((addr, port))
    lsock.listen(16)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, "listen")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    session = None
    echoed = 0
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            what = key.data
            if what == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    return
            elif what == "listen":
                try:
                    conn, _ = lsock.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                if session is None:
                    session = conn
                    sel.register(conn, selectors.EVENT_READ, "session")
                    print("session", flush=True)
                else:
                    sel.register(conn, selectors.EVENT_READ, "other")
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(conn)
                    conn.close()
                    if what == "session":
                        print("session-closed", flush=True)
                    continue
                if what == "session":
                    conn.setblocking(True)
                    conn.sendall(data)
                    conn.setblocking(False)
                    echoed += len(data)
                    deadline = time.monotonic() + 10.0
                    while unacked(conn) and time.monotonic() < deadline:
                        time.sleep(0.001)
                    print(f"acked {echoed}" if not unacked(conn) else f"unacked {echoed}", flush=True)


if __name__ == "__main__":
    main()
