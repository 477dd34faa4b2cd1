"""The reaper of one live lab: ``python3 -I reaper.py PACKAGE_ROOT STAMP LAB_PID``.

Started by the lab in a session of its own; it reads its stdin, a pipe whose only writer
is the lab's process. EOF means the lab's process has ended (or closed the lab): if the
stamp is still there and its creator is gone, the reaper removes what the stamp lists
(``nfteach.live.namespaces.reap_lab``): the lab's processes, namespaces, files, stamp.
"""
import os
import signal
import sys
import time
from pathlib import Path


def main():
    root, stamp_path, lab_pid = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the lab's terminal is not for us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    if not stamp_path.exists():
        return  # closed properly
    sys.path.insert(0, root)
    from nfteach.live.namespaces import LabStamp, reap_lab

    for _ in range(100):  # the creator's pid lingers as a zombie until its parent reaps it
        stamp = LabStamp.load(stamp_path)
        if stamp is None:
            return
        if stamp.pid == lab_pid and not stamp.creator_alive():
            reap_lab(stamp, stamp_path)
            return
        time.sleep(0.1)


if __name__ == "__main__":
    main()
