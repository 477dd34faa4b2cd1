"""``nfteach reset``: end this user's stuck or left-over labs, and nothing else.

A lab is only ever ended when it can be proven to be this user's:

* **vm**: a run directory of this user's cache (``$NFTEACH_CACHE/run/*``, owned by this
  uid). Its QEMU is the process named in its ``qemu.pid`` whose command line is
  ``qemu-system-*`` *and* names that run directory, and which runs as this uid; it is
  signalled by that PID.
* **live**: a stamp ``/run/nfteach/labs/nfteach-*.json`` (see ``nfteach.live.namespaces``)
  whose creator ran as this uid; the processes it recorded (pid *and* start time), the
  namespaces named after the lab id and its temp dir are removed, nothing else. A live lab
  runs as root, and every user of a machine who may start one is root: so a running live
  lab is this user's only when its stamp also names this user's ``$NFTEACH_CACHE``.

By default only **stale** labs are ended: their notebook (the process that started them)
is gone, e.g. after *Kernel → Restart*. ``all_mine=True`` (``nfteach reset --all-mine``)
also ends labs whose notebook kernel is still running but stuck; that notebook's next
command then fails with "its QEMU guest has stopped", and ``lab = course.reset(lab)``
or re-running its first cell starts a fresh lab.

>>> from nfteach.reset import reset                          # doctest: +SKIP
>>> for line in reset(dry_run=True).lines(): print(line)     # doctest: +SKIP
vm lab /root/.cache/nfteach/run/nfteach-5.10-abc123: QEMU 4242, notebook 4200 is gone: would end it
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

log = logging.getLogger("nfteach.reset")


@dataclass
class Action:
    kind: str          # "vm" or "live"
    what: str          # run directory or lab id
    why: str           # "its notebook N is gone" / "running (--all-mine)"
    done: bool = False
    detail: str = ""

    def line(self, dry_run: bool) -> str:
        verb = "would end it" if dry_run else ("ended" if self.done else f"could not end it: {self.detail}")
        return f"{self.kind} lab {self.what}: {self.why}: {verb}"


@dataclass
class Report:
    dry_run: bool
    actions: List[Action] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        out = [a.line(self.dry_run) for a in self.actions]
        out += [f"{k}: still running, kept (nfteach reset --all-mine ends it)" for k in self.kept]
        return out or ["nothing to reset: no lab of yours is left over"]


# -- processes ----------------------------------------------------------------------------
def proc_uid(pid: int) -> Optional[int]:
    """Real uid of ``pid``, None when there is no such process (or only its zombie)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    uid = state = None
    for line in text.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("State:"):
            state = line.split()[1]
    return None if state in ("Z", "X") else uid


def _end_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s, one PID (already proven ours)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc_uid(pid) is None:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- vm -----------------------------------------------------------------------------------
def qemu_pid(run: Path, uid: int) -> Optional[int]:
    """PID of the QEMU of run directory ``run`` if it is running as ``uid``."""
    try:
        pid = int((run / "qemu.pid").read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if not argv or b"qemu-system" not in os.path.basename(argv[0]):
        return None
    if not any(str(run).encode() in a for a in argv):
        return None
    return pid if proc_uid(pid) == uid else None


def _owner(run: Path) -> Optional[int]:
    try:
        return int((run / "owner").read_text().split()[0])  # "PID STARTTIME"
    except (OSError, ValueError):
        return None


def vm_runs(runs: Path, uid: int) -> List[Path]:
    """This user's run directories (owned by ``uid``, not symlinks)."""
    if not runs.is_dir():
        return []
    out = []
    for d in sorted(runs.iterdir()):
        try:
            st = d.lstat()
        except OSError:
            continue
        if d.is_dir() and not d.is_symlink() and st.st_uid == uid:
            out.append(d)
    return out


def _vm(report: Report, runs: Path, uid: int, all_mine: bool, starting_grace: float = 60.0) -> None:
    for d in vm_runs(runs, uid):
        owner = _owner(d)
        if owner is None and time.time() - d.stat().st_mtime < starting_grace:
            continue  # a lab that is starting right now
        pid = qemu_pid(d, uid)
        owner_alive = owner is not None and proc_uid(owner) is not None
        if pid is not None and owner_alive:
            if owner == os.getpid() or not all_mine:
                report.kept.append(f"vm lab {d} (QEMU {pid}, notebook {owner})")
                continue
            why = f"QEMU {pid} of running notebook {owner} (--all-mine)"
        elif pid is not None:
            why = f"QEMU {pid}, its notebook {owner} is gone"
        elif owner_alive and not all_mine and time.time() - d.stat().st_mtime < starting_grace:
            report.kept.append(f"vm lab {d} (starting, notebook {owner})")
            continue  # its QEMU has not written its pid file yet
        else:
            why = "its QEMU is gone"
        a = Action("vm", str(d), why)
        report.actions.append(a)
        if report.dry_run:
            continue
        if pid is not None:
            _end_pid(pid)
        shutil.rmtree(d, ignore_errors=True)
        a.done = not d.exists()
        a.detail = "" if a.done else "the run directory is still there"


# -- live ---------------------------------------------------------------------------------
def _live(report: Report, uid: int, all_mine: bool) -> None:
    from .live import namespaces as ns
    from .model.cache import owner

    cache = owner()

    state = ns.STATE_DIR
    if not state.is_dir():
        return
    stamps = []
    for path in sorted(state.glob(f"{ns.PREFIX}*.json")):
        st = ns.LabStamp.load(path)
        if st is None or not st.lab_id.startswith(ns.PREFIX) or path.stat().st_uid != uid:
            continue
        stamps.append((path, st))
    if not stamps:
        return
    me = ns.boot_id()
    existing: Optional[set] = None
    for path, st in stamps:
        running = st.boot == me and st.creator_alive()
        if running:
            if st.cache != cache:
                continue  # another owner's lab (another $NFTEACH_CACHE): not ours to judge
            if st.pid == os.getpid() or not all_mine or proc_uid(st.pid) != uid:
                report.kept.append(f"live lab {st.lab_id} (notebook {st.pid})")
                continue
            why = f"namespaces of running notebook {st.pid} (--all-mine)"
        else:
            why = f"its notebook {st.pid} is gone"
        a = Action("live", st.lab_id, why)
        report.actions.append(a)
        if report.dry_run:
            continue
        if existing is None:
            existing = set(ns.list_netns())
        ns.reap_lab(st, path, existing)
        a.done = True


def reset(all_mine: bool = False, dry_run: bool = False, runs: Optional[Path] = None,
          live: Optional[bool] = None) -> Report:
    """End this user's stale labs (all of this user's labs with ``all_mine``); see the module doc.

    ``runs`` is the vm run directory (default: this user's cache's); ``live`` (default: when
    running as root) whether live labs are looked at too.
    """
    uid = os.getuid()
    report = Report(dry_run)
    if runs is None:
        from .vm.qemu import runs_dir

        runs = runs_dir()
    _vm(report, Path(runs), uid, all_mine)
    if live if live is not None else uid == 0:
        _live(report, uid, all_mine)
    return report


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser(
        "reset", help="end your stuck or left-over labs (vm guests, live namespaces)",
        description="End this user's left-over labs: vm guests of run directories in $NFTEACH_CACHE/run "
                    "(owned by you) whose notebook is gone, and live labs (as root) whose notebook is gone.")
    p.add_argument("--all-mine", action="store_true",
                   help="also end your labs whose notebook kernel is still running (a stuck lab): "
                        "vm guests of your $NFTEACH_CACHE, and live labs started with the same "
                        "$NFTEACH_CACHE (live labs of other caches on this machine are left alone)")
    p.add_argument("--dry-run", "-n", action="store_true", help="only say what would be ended")
    p.set_defaults(func=run)


def run(args, out: Callable[[str], None] = print) -> int:
    report = reset(all_mine=args.all_mine, dry_run=args.dry_run)
    for line in report.lines():
        out(line)
    return 0 if all(a.done for a in report.actions) or report.dry_run else 1
