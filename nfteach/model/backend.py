"""The interface every backend implements (sim, live, vm).

A backend owns the two lab machines ("vm" and "host") and runs *argument lists* on
them: the lab has already stripped ``sudo``, split pipes and background jobs, so no
backend ever hands learner text to a shell.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import List, Sequence, Tuple


@dataclass(frozen=True)
class Output:
    """What one process printed and its exit status.

    ``chunks`` keeps stdout ("out") and stderr ("err") pieces in the order they were
    printed, so a transcript shows them interleaved while a pipe sees stdout alone.
    """

    chunks: Tuple[Tuple[str, str], ...] = ()
    status: int = 0

    @classmethod
    def of(cls, stdout: str = "", stderr: str = "", status: int = 0) -> Output:
        chunks = tuple((s, t) for s, t in (("out", stdout), ("err", stderr)) if t)
        return cls(chunks, status)

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.chunks)

    @property
    def stdout(self) -> str:
        return "".join(t for s, t in self.chunks if s == "out")

    @property
    def stderr(self) -> str:
        return "".join(t for s, t in self.chunks if s == "err")


class Job(abc.ABC):
    """A command started in the background (``CMD &``)."""

    argv: List[str]
    machine: str

    @abc.abstractmethod
    def signal(self, signum: int) -> None:
        """Deliver a signal (``kill -INT %N``)."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> Output:
        """Wait for the job to end and return everything it printed."""

    def done(self) -> bool:  # pragma: no cover - optional
        return False


class Backend(abc.ABC):
    """A lab: two machines, the article's addresses, an SSH-like session on tcp/22."""

    name: str = "?"
    kernel: str = "?"
    #: seconds ``kill -INT %N`` waits for the job to print and end before it is killed
    stop_timeout: float = 30.0

    def _release(self, attr: str, how: str) -> None:
        """Call ``self.<attr>.<how>()`` if the part is there, then forget it (for ``close``)."""
        part = getattr(self, attr, None)
        if part is not None:
            getattr(part, how)()
            setattr(self, attr, None)

    @abc.abstractmethod
    def start(self) -> None:
        """Build the lab to the article's starting point. Idempotent."""

    @abc.abstractmethod
    def run(self, machine: str, argv: Sequence[str]) -> Output:
        """Run one command (an argument list) on ``machine`` ("vm" or "host")."""

    @abc.abstractmethod
    def spawn(self, machine: str, argv: Sequence[str]) -> Job:
        """Start a command in the background."""

    def write_file(self, machine: str, path: str, text: str) -> None:
        """Make ``text`` available at ``path`` on ``machine`` (scripts for bpftrace, drgn)."""
        raise NotImplementedError

    def advance(self, seconds: float) -> None:
        """Let time pass (``sleep N``). Real backends really sleep."""
        import time

        time.sleep(seconds)

    @abc.abstractmethod
    def close(self) -> None:
        """Remove everything the lab created. Idempotent; also safe after a crash."""

    def describe(self) -> str:
        return f"backend {self.name}, kernel {self.kernel}"

    @classmethod
    def kernels(cls) -> tuple:
        """The kernels this backend offers, by name; ``(None,)``: only the machine's own."""
        return (None,)

    def modelled_kernel(self):
        """The simulator's kernel object, whose run can be watched (packet paths, entry
        lifecycles); None on a real kernel."""
        return None

    def drgn_program(self):
        """A ``drgn.Program`` on this lab's kernel (``nfteach.introspect.program``)."""
        from .errors import BackendUnavailable

        raise BackendUnavailable(f"no drgn program for backend {self.name!r}; use --backend sim or vm")

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
