"""The lab's "ssh" client: run inside the host namespace as
``python3 session_client.py SERVER PORT``.

Connects, prints ``connected SPORT``; then for every line ``k`` on stdin sends one byte,
waits (up to 10 s) until every byte sent so far has come back, ACKing at once
(``TCP_QUICKACK`` before each read), and prints ``ok N`` (or ``timeout N``).
Exits when stdin reaches EOF. Standard library only; run as a script.
"""
import select
import socket
import sys
import time


def quickack(s):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def main():
    server, port = sys.argv[1], int(sys.argv[2])
    s = socket.create_connection((server, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(None)
    quickack(s)
    print(f"connected {s.getsockname()[1]}", flush=True)
    sent = got = 0
    for line in sys.stdin:
        if line.strip() != "k":
            continue
        s.sendall(b"k")
        sent += 1
        deadline = time.monotonic() + 10.0
        while got < sent:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            quickack(s)
            r, _, _ = select.select([s], [], [], left)
            if r:
                data = s.recv(4096)
                quickack(s)
                if not data:
                    print("closed", flush=True)
                    return
                got += len(data)
        print(f"ok {got}" if got >= sent else f"timeout {got}", flush=True)


if __name__ == "__main__":
    main()
