"""The ``vm`` backend: a real Debian kernel booted under QEMU (software emulation).

>>> from nfteach.lab import Lab                                    # doctest: +SKIP
>>> from nfteach.vm.backend import VmBackend                        # doctest: +SKIP
>>> with Lab(backend=VmBackend(kernel="5.10")) as lab:             # doctest: +SKIP
...     print(lab.run("lsmod | grep '^nf_conntrack '").output, end="")

The guest's root namespace is the lab's ``vm``; namespace ``host`` inside the guest is
the client. Commands run in the guest through the agent on the serial console (argument
lists, never a shell). ``list-nf-hooks`` and ``drgn`` run on *this* machine with drgn,
reading the guest's memory over QMP.
"""
from __future__ import annotations

import atexit
import base64
import itertools
import logging
import os
import signal
import subprocess
import time
import weakref
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..model.backend import Backend, Job, Output
from ..model.errors import BackendUnavailable, LabError
from ..model.labpath import lab_path
from ..model.profile import DEFAULT_KERNEL
from . import fetch, host_tools, saved, settle
from .accel import Accel
from .accel import detect as detect_accel
from .console import Console, ConsoleClosed
from .qemu import Qemu, clean_stale_runs, qemu_binary
from .qmp import Qmp, QmpError

log = logging.getLogger("nfteach.vm")

_LIVE: weakref.WeakSet[VmBackend] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """A program that forgot close(): still stop its guests when Python exits."""
    for b in list(_LIVE):
        b.close()

KERNELS = tuple(fetch.KERNELS)
#: commands that run on this machine (drgn over QMP), not in the guest
HOST_TOOLS = ("list-nf-hooks", "drgn")
#: seconds one guest command may run before the agent kills it; below a notebook cell's
#: 600 s limit, so a stuck command shows up as that command's error, not a silent cell timeout
ENV_COMMAND_TIMEOUT = "NFTEACH_VM_COMMAND_TIMEOUT"
COMMAND_TIMEOUT = 240.0


ENV_MEMORY = "NFTEACH_VM_MEMORY"
MEMORY_MIB = 2048


def default_memory() -> int:
    """The guest's RAM in MiB (QEMU ``-m``): ``$NFTEACH_VM_MEMORY`` or 2048; docs/sizing.md
    measured 512 and 768 to run the whole article too (a room may cap guests with them)."""
    raw = os.environ.get(ENV_MEMORY, "")
    if not raw:
        return MEMORY_MIB
    if not raw.isdigit() or not 512 <= int(raw) <= 16384:
        raise BackendUnavailable(f"{ENV_MEMORY}={raw!r}: give the guest's memory in MiB, 512 to 16384")
    return int(raw)


def default_command_timeout() -> float:
    raw = os.environ.get(ENV_COMMAND_TIMEOUT, "")
    try:
        value = float(raw) if raw else COMMAND_TIMEOUT
    except ValueError:
        raise BackendUnavailable(f"{ENV_COMMAND_TIMEOUT}={raw!r}: not a number of seconds") from None
    if not 1 <= value <= 86400:
        raise BackendUnavailable(f"{ENV_COMMAND_TIMEOUT}={raw!r}: must be between 1 and 86400 seconds")
    return value


def _output(ans: dict, limit: Optional[float] = None) -> Output:
    chunks = tuple((s, t) for s, t in ans.get("chunks", ()) if t)
    if ans.get("timed_out"):
        within = f" within {limit:.0f} s" if limit else " in time"
        chunks += (("err", f"nfteach: the command did not finish{within} and was killed "
                           f"(limit: {ENV_COMMAND_TIMEOUT})\n"),)
    status = ans.get("status")
    return Output(chunks, 124 if ans.get("timed_out") else (status if status is not None else 1))


class VmJob(Job):
    """A background command in the guest (``bpftrace ... &``), known by its guest PID."""

    def __init__(self, backend: VmBackend, job: int, argv: Sequence[str], machine: str, pid: int, gen: int):
        self.backend, self.job, self.argv, self.machine, self.pid = backend, job, list(argv), machine, pid
        self.gen = gen
        self._result: Optional[Output] = None
        self._ended_at_start = False

    def done(self) -> bool:
        """True when the job had already ended by the time spawn() returned (or was waited for)."""
        return self._result is not None or self._ended_at_start

    def _console(self) -> Console:
        if self.backend._gen != self.gen or self.backend.console is None:
            raise LabError(f"job {self.argv[0]} was lost: its QEMU guest has stopped")
        return self.backend.console

    def signal(self, signum: int) -> None:
        if self._result is None:
            clean = settle.waits_for(self.argv, signum)
            if clean:  # Ctrl-C as a person presses it: not mid-output
                settle.until_idle(self._syscall)
            self._send(signum)
            if clean:  # and again if the tool missed it (settle.py)
                settle.press_again(self._ended_within, self._syscall, lambda: self._send(signum))

    def _send(self, signum: int) -> None:
        self.backend._call(lambda c: c.request("signal", timeout=30, job=self.job, sig=int(signum)),
                           console=self._console())

    def _ended_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the job to end; its output is kept for wait()."""
        if self._result is None:
            ans = self._wait(seconds)
            if ans.get("timed_out"):
                return False
            self._result = _output(ans)
        return True

    def _syscall(self) -> Optional[str]:
        """The job's /proc/PID/syscall in the guest, None once it is gone (no session
        keystroke: the learner typed nothing)."""
        ans = self.backend._call(lambda c: c.request("run", timeout=40, argv=["cat", f"/proc/{self.pid}/syscall"],
                                                     ns="vm", tick=False, timeout_s=10), console=self._console())
        return "".join(t for s, t in ans.get("chunks", ()) if s == "out") if ans.get("status") == 0 else None

    def wait(self, timeout: Optional[float] = None) -> Output:
        """The job's output once it ended; a job still running after ``timeout`` (default: the
        backend's command limit) is killed, as the live backend does, and the output says so."""
        if self._result is None:
            limit = self.backend.command_timeout if timeout is None else timeout
            ans = self._wait(limit)
            if ans.get("timed_out"):
                self.backend._call(lambda c: c.request("signal", timeout=30, job=self.job, sig=int(signal.SIGKILL)),
                                   console=self._console())
                ans = self._wait(30)
                note = f"nfteach: {self.argv[0]} did not end within {limit:.0f} s and was killed\n"
                ans = dict(ans, chunks=list(ans.get("chunks", ())) + [["err", note]],
                           status=ans.get("status") if not ans.get("timed_out") else 137, timed_out=False)
            self._result = _output(ans)
        return self._result

    def _wait(self, seconds: float) -> dict:
        return self.backend._call(lambda c: c.request("wait", timeout=seconds + 30, job=self.job, wait_s=seconds),
                                  console=self._console())


class VmBackend(Backend):
    """Debian kernel ``kernel`` (a key of ``fetch.KERNELS``: 5.10, 6.1, 6.12) in QEMU; see the module docstring."""

    name = "vm"
    # bpftrace prints its maps (kernel stacks symbolized from /proc/kallsyms) and detaches
    # under software emulation: CI once saw that take over 30 s on a busy machine
    stop_timeout = 120.0

    def __init__(self, kernel: Optional[str] = None, memory: Optional[str] = None, cpus: int = 2,
                 boot_timeout: float = 300, build: bool = True, command_timeout: Optional[float] = None,
                 restore: bool = True, accel: Optional[Accel] = None, **_ignored):
        kernel = kernel or DEFAULT_KERNEL
        if kernel not in fetch.KERNELS:
            raise BackendUnavailable(f"vm backend: unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}",
                                     token=kernel)
        self.kernel = kernel
        self.memory, self.cpus = str(memory or default_memory()), cpus
        self.boot_timeout, self.build = boot_timeout, build
        self.command_timeout = command_timeout or default_command_timeout()
        self.qemu: Optional[Qemu] = None
        self.console: Optional[Console] = None
        self.release: Optional[str] = None
        self._jobs = itertools.count(1)
        self._gen = 0
        self._files: Dict[str, str] = {}
        #: files the restored guest already holds as the saved state wrote them: path -> digest
        self._preloaded: Dict[str, str] = {}
        #: restore a saved, booted guest (``saved.py``) instead of booting; False: always boot
        self.restore = restore
        self.accel = accel
        #: how the guest was started ("restored from a saved guest", "cold boot (why)")
        self.start_mode = ""
        self.boot_seconds: Optional[float] = None

    # -- life cycle ----------------------------------------------------------------
    def describe(self) -> str:
        rel = f" ({self.release})" if self.release else ""
        text = f"backend vm, Debian kernel {self.kernel}{rel} under QEMU"
        if self.qemu is not None:
            text += f" with {self.qemu.accel.describe()}"
        if self.start_mode and self.boot_seconds is not None:
            text += f"; {self.start_mode}, ready in {self.boot_seconds:.1f} s"
        return text

    def _image(self) -> Path:
        from .disk import build_image, check_image, image_dir

        img = image_dir(self.kernel)
        if (img / "version").exists() and not self.build:
            damage = check_image(img)
            if damage:
                raise BackendUnavailable(
                    f"vm backend: kernel {self.kernel}'s image is not whole: {damage}; "
                    f"run `nfteach vm build --kernel {self.kernel} --force`")
            return img
        damage = check_image(img) if (img / "version").exists() else None
        if damage:
            log.warning("kernel %s's image is not whole (%s): building it again", self.kernel, damage)
        try:
            return build_image(self.kernel, force=bool(damage))
        except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
            if damage:
                raise BackendUnavailable(
                    f"vm backend: kernel {self.kernel}'s image is not whole ({damage}) and could not be rebuilt; "
                    f"run `nfteach vm build --kernel {self.kernel} --force`") from None
            raise BackendUnavailable(
                f"vm backend: kernel {self.kernel} is not ready ({e}); run `nfteach vm fetch --kernel {self.kernel}`"
            ) from None

    def start(self) -> None:
        if self.qemu is not None and self.qemu.alive() and self.console is not None:
            return
        self.close()
        if not qemu_binary():
            raise BackendUnavailable("vm backend needs qemu-system-x86_64: apt-get install --no-install-recommends qemu-system-x86")
        clean_stale_runs()
        img = self._image()
        t0 = time.monotonic()
        if self.restore and not saved.cold_only():
            try:
                self._restore(img)
            except saved.SavedStateError as e:
                log.warning("vm %s: %s; booting the kernel instead", self.kernel, e)
                self.start_mode = f"cold boot ({e})"
        if self.console is None:
            self._cold_boot(img)
        _LIVE.add(self)
        self._gen += 1
        self.boot_seconds = time.monotonic() - t0
        log.info("vm %s: %s %s in %.1f s", self.kernel, self.start_mode.split(" (")[0], self.release,
                 self.boot_seconds)

    def _qemu(self, img: Path, **overrides) -> Qemu:
        """This lab's QEMU, unstarted; a saved state is made with and restored into this same one."""
        try:
            acc = self.accel or detect_accel()
        except ValueError as e:
            raise BackendUnavailable(f"vm backend: {e}") from None
        return Qemu(img, memory=self.memory, cpus=self.cpus, name=f"nfteach-{self.kernel}", accel=acc, **overrides)

    def _cold_boot(self, img: Path) -> None:
        self.qemu = self._qemu(img)
        try:
            self.qemu.start()
            self.console = Console(self.qemu.serial_path, self.qemu.run_dir / "console.log", self.qemu.alive)
            ready = self.console.wait_ready(self.boot_timeout)
        except (OSError, RuntimeError, TimeoutError, ConsoleClosed) as e:
            tail = self.qemu.log_tail() if self.qemu else ""
            self.close()
            raise BackendUnavailable(f"vm backend: the {self.kernel} guest did not boot ({e}) {tail}".strip()) from None
        self.release = ready.get("release")
        if not self.start_mode.startswith("cold boot ("):
            self.start_mode = "cold boot" + (f" ({saved.ENV_COLD}=1)" if self.restore else "")

    def _restore(self, img: Path) -> None:
        """Start from the saved, booted guest (made now if there is none); a saved state of ours
        that does not restore is removed and made once more."""
        for attempt in (1, 2):
            state = self.save_guest()
            try:
                self._start_from(img, state)
                self.start_mode = "restored from a saved guest" + (" (shared cache)" if state.shared else "")
                return
            except (OSError, RuntimeError, TimeoutError, ConsoleClosed, QmpError) as e:
                tail = self.qemu.log_tail() if self.qemu else ""
                self.close()
                if state.shared or attempt == 2:
                    raise saved.SavedStateError(f"the saved guest in {state.dir} did not restore ({e}) {tail}".strip()) from None
                log.warning("vm %s: the saved guest in %s did not restore (%s %s); saving it again",
                            self.kernel, state.dir, e, tail)
                saved.discard(state)

    def save_guest(self, progress=None, force: bool = False) -> saved.SavedState:
        """Make (or find) the saved, booted guest this backend's labs restore (``nfteach vm build``)."""
        from ..lab import tool_files

        img = self._image()
        return saved.ensure(self.kernel, lambda **o: self._qemu(img, **o), self.boot_timeout,
                            progress=progress, force=force, files=tool_files())

    def _start_from(self, img: Path, state: saved.SavedState) -> None:
        self.qemu = self._qemu(img, disk=state.disk, incoming=state.stream)
        self.qemu.start()
        self.console = Console(self.qemu.serial_path, self.qemu.run_dir / "console.log", self.qemu.alive)
        with Qmp(self.qemu.qmp_paths()[-1]) as q:
            # "inmigrate" while the stream loads; then paused (it was saved paused)
            status = q.wait_status(("paused", "running"), 60, self.qemu.alive)
            if status == "paused":
                q.execute("cont")
        ans = self.console.request("resume", timeout=30, time=time.time(),
                                   seed=base64.b64encode(os.urandom(64)).decode())
        self.release = ans.get("release")
        self._preloaded = dict(state.record.get("files", {}))

    def close(self) -> None:
        self._preloaded = {}
        self._release("console", "close")
        self._release("qemu", "stop")

    # -- talking to the guest ----------------------------------------------------------
    def _call(self, fn, console: Optional[Console] = None):
        c = console or self.console
        try:
            return fn(c)
        except (ConsoleClosed, TimeoutError) as e:
            why = "QEMU exited" if self.qemu is None or not self.qemu.alive() else str(e)
            trouble = c.kernel_trouble() if c is not None else ""
            if trouble:
                why += f"; the guest kernel printed: {trouble[:300]}"
            self.close()
            raise LabError(
                f"the QEMU guest (kernel {self.kernel}) has stopped ({why}); the next command starts a new one"
            ) from None

    def _ensure(self) -> None:
        """Boot if needed; if our guest died since the last command, say so (once)."""
        if self.qemu is not None and not self.qemu.alive():
            code = self.qemu.proc.returncode if self.qemu.proc else None
            self.close()
            raise LabError(
                f"the QEMU guest (kernel {self.kernel}) has stopped (QEMU exit status {code}); "
                "the next command starts a new one"
            )
        if self.qemu is None or self.console is None:
            self.start()

    def run(self, machine: str, argv: Sequence[str]) -> Output:
        self._ensure()
        if machine == "vm" and argv and argv[0] in HOST_TOOLS:
            self._call(lambda c: c.request("run", timeout=60, argv=["true"]))  # the keystroke
            return self._host_tool(list(argv))
        ans = self._call(lambda c: c.request("run", timeout=self.command_timeout + 30, argv=list(argv),
                                             ns=machine, timeout_s=self.command_timeout))
        return _output(ans, self.command_timeout)

    def spawn(self, machine: str, argv: Sequence[str]) -> Job:
        self._ensure()
        if argv and argv[0] in HOST_TOOLS:
            raise LabError(f"{argv[0]} runs on this machine over QMP and cannot run in the background",
                           token=argv[0])
        job = next(self._jobs)
        ready = "Attaching" if argv and argv[0] == "bpftrace" else None
        ans = self._call(lambda c: c.request("spawn", timeout=200, argv=list(argv), ns=machine, job=job,
                                             ready=ready, ready_timeout=150))
        j = VmJob(self, job, argv, machine, ans["pid"], self._gen)
        j._ended_at_start = bool(ans.get("finished"))
        return j

    def write_file(self, machine: str, path: str, text: str) -> None:
        lab_path(path)  # absolute, no '..': it is mapped into the run directory on this machine
        self._ensure()
        if self._preloaded.pop(path, None) != saved.text_digest(text):  # not already in the saved guest
            self._call(lambda c: c.write_file(path, text))
        self._files[path] = text

    def exec_raw(self, argv: Sequence[str], machine: str = "vm", tick: bool = False) -> Output:
        """Run without the session keystroke (for tools and tests, not lab commands)."""
        self._ensure()
        return _output(self._call(lambda c: c.request("run", timeout=self.command_timeout + 30, argv=list(argv),
                                                      ns=machine, tick=tick, timeout_s=self.command_timeout)),
                       self.command_timeout)

    @classmethod
    def kernels(cls) -> tuple:
        return KERNELS

    # -- drgn on this machine --------------------------------------------------------------
    def drgn_program(self):
        """drgn over QMP on the guest's memory, with its vmlinux and modules' debug info."""
        from .program import qemu_program

        qemu = getattr(self, "qemu", None)
        if qemu is None:
            raise BackendUnavailable("the vm backend offers no drgn program (is the guest running?)")
        files = self._debug_files()
        path = qemu.free_qmp() if hasattr(qemu, "free_qmp") else qemu.qmp_path
        prog = qemu_program(path, files[0], files[1:])
        if hasattr(qemu, "hold_qmp"):
            qemu.hold_qmp(path, prog)
        return prog

    def _debug_files(self) -> List[Path]:
        return host_tools.debug_files(self)

    def _host_tool(self, argv: List[str]) -> Output:
        return host_tools.run(self, argv)

    # -- for tests -------------------------------------------------------------------------
    @property
    def qemu_pid(self) -> Optional[int]:
        return self.qemu.proc.pid if self.qemu and self.qemu.proc else None

    def kill_qemu(self) -> None:
        """Simulate a crash: SIGKILL our QEMU, as if it died on its own."""
        if self.qemu_pid:
            os.kill(self.qemu_pid, signal.SIGKILL)
