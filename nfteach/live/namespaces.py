"""The two network namespaces of a live lab, and proof that leftovers are ours.

A lab is ``nfteach-<pid>-<rand>``; its machines are the namespaces
``nfteach-<pid>-<rand>-vm`` and ``nfteach-<pid>-<rand>-host``, joined by a veth pair whose
two ends are both called ``eth0`` and are created *inside* the namespaces
(``ip -n VM link add eth0 type veth peer name eth0 netns HOST``), so no link, address,
route or rule ever appears in the machine's root namespace.

Before the first namespace exists the lab writes a stamp, ``/run/nfteach/labs/<id>.json``,
with the creator's pid, its start time (``/proc/PID/stat`` field 22) and the boot id. A
later lab start reaps a stamp only when all of these hold:

* the boot id is this boot's (``/run`` is a tmpfs, so this is belt and braces),
* the creator is gone: no process with that pid, or one with another start time,

and then removes exactly what the stamp lists: the processes it recorded (each one checked
by pid *and* start time, signalled by pid), the namespaces it recorded, its temp dir.
A namespace named ``nfteach-*`` without a stamp is never touched: it cannot be proven ours.

A lab does not wait for the next lab to clean up after it: each lab starts a **reaper**
(``helpers/reaper.py``), a process of its own session that reads a pipe from the lab.
When the lab's process ends in any way (``close()`` forgotten, SIGTERM, SIGKILL) the pipe
reaches EOF and the reaper removes what the stamp lists (:func:`reap_lab`). The stamp also
records the lab's owner, its ``$NFTEACH_CACHE`` (``nfteach reset --all-mine``).
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..model.cache import owner
from ..model.notes import LAB
from ..procs import proc_starttime

log = logging.getLogger(__name__)

STATE_DIR = Path(os.environ.get("NFTEACH_STATE_DIR", "/run/nfteach/labs"))
PREFIX = "nfteach-"
MACHINES = ("vm", "host")


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def alive(pid: int, starttime: Optional[int]) -> bool:
    """True when ``pid`` is still the very process that was recorded."""
    st = proc_starttime(pid)
    return st is not None and (starttime is None or st == starttime)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip() or p.returncode}")
    return p


def kill_netns_pids(ns: str) -> None:
    """SIGKILL every process still in the lab's namespace ``ns`` (a sandbox whose job outlived
    its lab, a background tool): only the lab creates these namespaces, so all of it is the lab's."""
    for word in _ip("netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(word), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def list_netns() -> List[str]:
    p = _ip("netns", "list", check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


@dataclass
class LabStamp:
    """What a lab created, written to disk before it creates it."""

    lab_id: str
    pid: int
    starttime: Optional[int]
    boot: str
    namespaces: List[str]
    tmpdir: str = ""
    #: processes the lab started: pid -> start time
    procs: Dict[str, Optional[int]] = field(default_factory=dict)
    created: float = 0.0
    #: the creator's $NFTEACH_CACHE (absolute): whose lab this is (``nfteach reset --all-mine``)
    cache: str = ""

    @property
    def path(self) -> Path:
        return STATE_DIR / f"{self.lab_id}.json"

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=1))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> Optional[LabStamp]:
        try:
            d = json.loads(path.read_text())
            return cls(**d)
        except (OSError, ValueError, TypeError):
            return None

    def creator_alive(self) -> bool:
        return alive(self.pid, self.starttime)


def _kill_recorded(procs: Dict[str, Optional[int]]) -> None:
    """SIGKILL each recorded process that is provably the one we started."""
    for spid, st in procs.items():
        pid = int(spid)
        if st is not None and alive(pid, st):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def reap_stale() -> List[str]:
    """Remove what crashed labs left behind; returns the lab ids reaped."""
    reaped = []
    if not STATE_DIR.is_dir():
        return reaped
    me = boot_id()
    existing = set(list_netns())
    for path in sorted(STATE_DIR.glob("*.json")):
        stamp = LabStamp.load(path)
        if stamp is None or not stamp.lab_id.startswith(PREFIX):
            continue
        if stamp.boot == me and stamp.creator_alive():
            continue  # a lab that is running right now
        log.info("reaping lab %s left by pid %s", stamp.lab_id, stamp.pid)
        reap_lab(stamp, path, existing)
        reaped.append(stamp.lab_id)
    return reaped


def reap_lab(stamp: LabStamp, path: Optional[Path] = None, existing: Optional[set] = None) -> None:
    """Remove exactly what ``stamp`` lists: its recorded processes (pid and start time),
    its namespaces (named after its lab id), its temp dir, then the stamp itself."""
    _kill_recorded(stamp.procs)
    if existing is None:
        existing = set(list_netns())
    for ns in stamp.namespaces:
        if ns.startswith(stamp.lab_id) and ns in existing:
            kill_netns_pids(ns)
            _ip("netns", "del", ns, check=False)
    if stamp.tmpdir and Path(stamp.tmpdir).name.startswith(PREFIX):
        shutil.rmtree(stamp.tmpdir, ignore_errors=True)
    try:
        (path or stamp.path).unlink()
    except OSError:
        pass


REAPER = Path(__file__).resolve().parent / "helpers" / "reaper.py"


def start_reaper(stamp_path: Path) -> subprocess.Popen:
    """The reaper of one lab: it waits for EOF on its stdin (this process gone), then reaps."""
    import sys

    package_root = str(Path(__file__).resolve().parents[2])
    return subprocess.Popen(
        [sys.executable, "-I", str(REAPER), package_root, str(stamp_path), str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )


class LabNamespaces:
    """Create and remove the ``vm`` and ``host`` namespaces of one lab."""

    def __init__(self, tmpdir: str = ""):
        self.lab_id = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.names = {m: f"{self.lab_id}-{m}" for m in MACHINES}
        self.stamp = LabStamp(
            lab_id=self.lab_id,
            pid=os.getpid(),
            starttime=proc_starttime(os.getpid()),
            boot=boot_id(),
            namespaces=list(self.names.values()),
            tmpdir=tmpdir,
            created=time.time(),
            cache=owner(),
        )
        self.created = False
        self.reaper: Optional[subprocess.Popen] = None

    def ns(self, machine: str) -> str:
        return self.names[machine]

    def exec_prefix(self, machine: str) -> List[str]:
        return ["ip", "netns", "exec", self.names[machine]]

    def _in(self, machine: str, argv: Sequence[str]) -> None:
        p = subprocess.run([*self.exec_prefix(machine), *argv], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"{machine}: {' '.join(argv)}: {p.stderr.strip()}")

    def create(self) -> None:
        self.stamp.save()  # the stamp exists before anything it describes
        self.created = True
        self.reaper = start_reaper(self.stamp.path)
        vm, host = self.names["vm"], self.names["host"]
        for ns in (vm, host):
            _ip("netns", "add", ns)
        for m in MACHINES:
            # No IPv6: no router/neighbour solicitations or MLD reports on the lab link,
            # so counters and conntrack see only what the learner's commands cause.
            for key in ("all", "default", "lo"):
                self._in(m, ["sysctl", "-q", "-w", f"net.ipv6.conf.{key}.disable_ipv6=1"])
        ifname = LAB["vm"]["ifname"]
        _ip("-n", vm, "link", "add", ifname, "type", "veth", "peer", "name", LAB["host"]["ifname"], "netns", host)
        for m in MACHINES:
            ns = self.names[m]
            spec = LAB[m]
            _ip("-n", ns, "addr", "add", f"{spec['addr']}/{spec['prefix']}", "dev", spec["ifname"])
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", spec["ifname"], "up")

    def record_process(self, pid: int) -> None:
        self.stamp.procs[str(pid)] = proc_starttime(pid)
        if self.created:
            self.stamp.save()

    def forget_process(self, pid: int) -> None:
        if self.stamp.procs.pop(str(pid), None) is not None and self.created:
            self.stamp.save()

    def destroy(self) -> None:
        if not self.created:
            return
        _kill_recorded(self.stamp.procs)
        existing = set(list_netns())
        for ns in self.names.values():
            if ns in existing:
                kill_netns_pids(ns)
                _ip("netns", "del", ns, check=False)
        try:
            self.stamp.path.unlink()
        except OSError:
            pass
        self.created = False
        if self.reaper is not None:  # EOF: it finds no stamp, and ends
            try:
                self.reaper.stdin.close()
                self.reaper.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.reaper = None
