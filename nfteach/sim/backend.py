"""The ``sim`` backend: the lab on a modelled kernel. Pure Python, no privileges."""
from __future__ import annotations

import signal
from typing import Dict, Sequence

from ..model.backend import Backend, Job, Output
from ..model.errors import LabError
from ..model.profile import available_profiles, load_profile
from .commands import dispatch
from .kernel.kernel import Kernel

STEP = 0.02  # model seconds a command takes (a console round trip)


class SimJob(Job):
    """A background command on the model; its output is produced when it ends.

    ``bpftrace`` attaches its probes when the job starts, so what runs meanwhile fires them;
    its output (BEGIN, printf, maps) comes when it is killed or calls ``exit()``.
    """

    def __init__(self, backend: SimBackend, machine: str, argv):
        self.backend, self.machine, self.argv = backend, machine, list(argv)
        self._out = None
        self._session = None
        if self.argv and self.argv[0].rsplit("/", 1)[-1] == "bpftrace":
            from .trace.bpftrace import start

            k = backend.k
            self._session = start(k, self.argv, backend.files)

    def signal(self, signum: int) -> None:
        if self._out is None:
            if self._session is not None:
                if signum == signal.SIGKILL:  # no chance to print the maps
                    self._session.finish(print_maps=False)
                self._out = self._session.stop()
            else:
                self._out = self.backend.run(self.machine, self.argv)
            if signum not in (signal.SIGINT, signal.SIGTERM):
                self._out = Output(self._out.chunks, 128 + signum)

    def done(self) -> bool:
        """True when the program has already ended (e.g. its probes could not attach)."""
        return self._session is not None and bool(self._session.done)

    def wait(self, timeout=None) -> Output:
        if self._out is None:
            if self._session is not None:
                if not self._session.done:
                    from .trace.bpftrace import bpftrace_wait

                    return bpftrace_wait(self.backend.k, self._session)
                self._out = self._session.output()
            else:
                self._out = self.backend.run(self.machine, self.argv)
        return self._out


class SimBackend(Backend):
    name = "sim"

    def __init__(self, kernel: str | None = None, seed: int = 0, **options):
        if options:
            raise LabError(f"sim backend: unknown option(s) {', '.join(options)}")
        self.profile = load_profile(kernel)
        self.kernel = self.profile.name
        self.seed = seed
        self.k: Kernel | None = None
        self.files: Dict[str, str] = {}

    @classmethod
    def kernels(cls) -> tuple:
        return tuple(available_profiles())

    def modelled_kernel(self) -> Kernel:
        self.start()
        return self.k

    def drgn_program(self):
        from ..introspect.simprog import sim_program

        return sim_program(self.modelled_kernel())

    def start(self) -> None:
        if self.k is not None:
            return
        self.k = Kernel(self.kernel, seed=self.seed)
        self.k.files = self.files  # learner scripts (drgn, bpftrace) written with write_file
        self.k.stack.start_session(self.k.netns("host"), self.k.netns("vm"))
        self.k.advance(1.0)

    def run(self, machine: str, argv: Sequence[str]) -> Output:
        if self.k is None:
            self.start()
        if machine not in ("vm", "host"):
            raise LabError(f"unknown machine {machine!r}", token=machine)
        k = self.k
        k.stack.keystroke()
        k.advance(STEP)
        out = dispatch(k, k.netns(machine), list(argv))
        k.settle(0.01)
        return out

    def spawn(self, machine: str, argv: Sequence[str]) -> Job:
        if self.k is None:
            self.start()
        return SimJob(self, machine, argv)

    def write_file(self, machine: str, path: str, text: str) -> None:
        self.files[path] = text

    def advance(self, seconds: float) -> None:
        if self.k is None:
            self.start()
        self.k.advance(seconds)

    def close(self) -> None:
        self.k = None

    def describe(self) -> str:
        return f"backend sim, kernel profile {self.kernel} ({self.profile.description})"
