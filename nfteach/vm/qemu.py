"""Start and stop one QEMU guest (TCG or KVM, see ``accel.py``; no network, no root needed).

Each VM gets a private run directory holding its serial and QMP sockets, its pid file,
its console log and the temporary overlay of its disk (``snapshot=on``), so two VMs
never share sockets or disks. ``stop()`` ends only the QEMU process this object
started (by PID) and removes the run directory. The image directory is only read
(``-kernel``, ``-initrd``, a ``snapshot=on`` drive), so it may be a shared read-only one.

A guest restored from a saved state (``saved.py``) runs the same command with the saved
disk overlay as its drive (again ``snapshot=on``: the saved overlay is only read) and
``-incoming fd:N``, N being the saved migration stream opened read-only.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from ..procs import proc_starttime
from .accel import Accel
from .accel import detect as detect_accel
from .fetch import cache_dir

log = logging.getLogger("nfteach.vm")

QEMU = "qemu-system-x86_64"


def runs_dir() -> Path:
    """This user's run directories: always in the writable ``$NFTEACH_CACHE``, never in the
    shared read-only cache (``NFTEACH_SHARED_CACHE``) that may hold the booted image."""
    return cache_dir() / "run"


def qemu_binary() -> Optional[str]:
    return shutil.which(QEMU)


class Qemu:
    """One guest. ``image`` is a directory with vmlinuz, initrd.gz and disk.img."""

    def __init__(self, image: Path, memory: str = "2048", cpus: int = 2, name: str = "vm",
                 accel: Optional[Accel] = None, disk: Optional[Path] = None, snapshot: bool = True,
                 incoming: Optional[Path] = None):
        self.image = Path(image)
        self.memory = memory
        self.cpus = cpus
        self.name = name
        self.accel = accel or detect_accel()
        #: the drive: the image's raw disk, or a qcow2 overlay (a saved state's)
        self.disk = Path(disk) if disk else self.image / "disk.img"
        self.snapshot = snapshot
        #: a saved migration stream to start from (``-incoming``), else a cold boot
        self.incoming = incoming
        self.proc: Optional[subprocess.Popen] = None
        self.run_dir: Optional[Path] = None

    @property
    def serial_path(self) -> Path:
        return self.run_dir / "serial.sock"

    @property
    def qmp_path(self) -> Path:
        return self.run_dir / "qmp.sock"

    #: QEMU serves one client per QMP socket and a drgn Program keeps its connection for
    #: life, so the guest gets several sockets: one per Program alive at the same time.
    QMP_SLOTS = 8

    def qmp_paths(self) -> List[Path]:
        return [self.qmp_path] + [self.run_dir / f"qmp-{i}.sock" for i in range(1, self.QMP_SLOTS)]

    def free_qmp(self) -> Path:
        """A QMP socket no live drgn Program holds (its holder freed, the connection closed)."""
        import gc
        import sys

        holders = self.__dict__.setdefault("_qmp_holders", {})
        for i, path in enumerate(self.qmp_paths()):
            prog = holders.get(i)
            if prog is None:
                return path
            if sys.getrefcount(prog) <= 3:  # only our dict, this local and getrefcount's argument
                del holders[i], prog
                gc.collect()
                return path
        raise RuntimeError(f"all {self.QMP_SLOTS} QMP sockets of the guest are held by drgn programs")

    def hold_qmp(self, path: Path, prog) -> None:
        """Remember that ``prog`` holds ``path`` for as long as something else refers to it."""
        holders = self.__dict__.setdefault("_qmp_holders", {})
        holders[self.qmp_paths().index(path)] = prog

    def command(self) -> List[str]:
        """The command line, without ``-incoming``: a saved guest and the guests restored
        from it run this same command (``machine_signature``), so their devices match."""
        img = self.image
        fmt = "qcow2" if self.disk.suffix == ".qcow2" else "raw"
        return [
            qemu_binary() or QEMU,
            "-name", self.name,
            "-m", self.memory, "-smp", str(self.cpus),
            *self.accel.args,
            "-nographic", "-no-reboot", "-monitor", "none",
            "-kernel", str(img / "vmlinuz"), "-initrd", str(img / "initrd.gz"),
            "-append", "console=ttyS0 panic=-1 quiet loglevel=1 nokaslr",
            "-drive", f"file={self.disk},format={fmt},if=virtio" + (",snapshot=on" if self.snapshot else ""),
            "-serial", f"unix:{self.serial_path},server=on,wait=off",
            *[a for p in self.qmp_paths() for a in ("-qmp", f"unix:{p},server=on,wait=off")],
            "-device", "vmcoreinfo",
            "-nic", "none",
            "-pidfile", str(self.run_dir / "qemu.pid"),
        ]

    def machine_signature(self) -> str:
        """The command line with this guest's own paths (run directory, image, disk, QEMU
        binary) left out: what a saved state and its restored guests must agree on."""
        saved_run_dir, self.run_dir = self.run_dir, Path("/RUN")
        try:
            cmd = self.command()[1:]
        finally:
            self.run_dir = saved_run_dir
        out = []
        for arg in cmd:
            for path, name in ((str(self.disk), "DISK"), (str(self.image), "IMAGE")):
                arg = arg.replace(path, name)
            out.append(arg.replace(",snapshot=on", ""))
        return " ".join(out)

    def start(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        runs_dir().mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=runs_dir()))
        env = dict(os.environ, TMPDIR=str(self.run_dir))  # snapshot overlay lives here
        cmd = self.command()
        stream = None
        if self.incoming is not None:
            stream = os.open(self.incoming, os.O_RDONLY)
            cmd += ["-incoming", f"fd:{stream}"]
        log.debug("starting %s", " ".join(cmd))
        try:
            with open(self.run_dir / "qemu.log", "wb") as logf:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                             env=env, start_new_session=True,
                                             pass_fds=(stream,) if stream is not None else ())
        finally:
            if stream is not None:
                os.close(stream)
        (self.run_dir / "owner").write_text(owner_stamp())
        end = time.monotonic() + 30
        while not self.serial_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"qemu exited at once: {self.log_tail()}")
            if time.monotonic() > end:
                raise RuntimeError("qemu did not create its serial socket within 30 s")
            time.sleep(0.01)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 5) -> str:
        try:
            lines = (self.run_dir / "qemu.log").read_text(errors="replace").strip().splitlines()
            return " | ".join(lines[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5) -> None:
        """Kill our QEMU (SIGTERM, then SIGKILL) and remove the run directory."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None


def _qemu_of(d: Path) -> Optional[int]:
    """PID of the QEMU that runs in run directory ``d``, if it is still running."""
    try:
        pid = int((d / "qemu.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"qemu-system" in cmdline and str(d).encode() in cmdline else None


def owner_stamp(pid: Optional[int] = None) -> str:
    """What a run directory's ``owner`` file holds: the lab process's PID and start time."""
    pid = os.getpid() if pid is None else pid
    return f"{pid} {proc_starttime(pid) or '-'}\n"


def _owner_alive(d: Path) -> bool:
    try:
        fields = (d / "owner").read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return False
    started = proc_starttime(pid)
    if started is None:
        return False
    return len(fields) < 2 or fields[1] in ("-", str(started))


def stale_runs() -> List[Path]:
    """Run directories whose owning process is gone (a PID reused since does not count)."""
    out = []
    if not runs_dir().is_dir():
        return out
    for d in runs_dir().iterdir():
        if not d.is_dir():
            continue
        if not (d / "owner").exists() and time.time() - d.stat().st_mtime < 60:
            continue  # still starting
        # a live owner's directory is the owner's to remove (its QEMU may be starting: no
        # pid file yet); only a dead owner's leftovers are stale
        if not _owner_alive(d):
            out.append(d)
    return out


def clean_stale_runs() -> int:
    """Remove leftovers of crashed labs; a QEMU whose owner died is ended by its PID."""
    n = 0
    for d in stale_runs():
        pid = _qemu_of(d)
        if pid is not None:
            log.info("ending orphan QEMU %d (its lab process is gone)", pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(d, ignore_errors=True)
        n += 1
    return n
