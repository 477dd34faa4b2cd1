"""``Lab``: the one interface notebooks, widgets and the CLI use, on every backend.

>>> from nfteach import Lab
>>> with Lab() as lab:                       # the simulator, kernel profile 5.10
...     print(lab.run("sudo conntrack -L").output, end="")
conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.
"""
from __future__ import annotations

import signal
from typing import Dict, List, Optional, Union

from . import filters
from .backends import DEFAULT_BACKEND, make_backend
from .cmdline import ParsedLine, parse_line
from .model import notes
from .model.backend import Backend, Job, Output
from .model.errors import LabError
from .model.labpath import lab_path
from .model.results import CommandResult, Transcript

TOOLS_DIR = "/vagrant/tools"


def tool_files() -> Dict[str, str]:
    """What every lab writes on its ``vm`` at start: path -> text (the article's tools)."""
    from importlib import resources

    return {f"{TOOLS_DIR}/{entry.name}": entry.read_text()
            for entry in sorted(resources.files("nfteach.tools").iterdir(), key=lambda e: e.name)
            if entry.name.endswith((".bt", ".py")) and not entry.name.startswith("_")}


_SIGNALS = {"INT": signal.SIGINT, "TERM": signal.SIGTERM, "KILL": signal.SIGKILL, "HUP": signal.SIGHUP}


class Lab:
    """Two machines from the article, ``vm`` (192.168.122.204) and ``host`` (192.168.122.1).

    ``backend`` is ``"sim"`` (default), ``"live"`` or ``"vm"``; ``kernel`` names a kernel
    profile (``"5.10"``, ``"6.1"``, ``"6.12"``, ``"6.18"``) where the backend lets you choose.
    """

    def __init__(self, backend: Union[str, Backend] = DEFAULT_BACKEND, kernel: Optional[str] = None, **options):
        self.backend: Backend = backend if isinstance(backend, Backend) else make_backend(backend, kernel, **options)
        self.jobs: Dict[int, Job] = {}
        self._job_lines: Dict[int, str] = {}
        self._next_job = 1
        self._started = False
        self._closed = False
        self.history: List[CommandResult] = []

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> Lab:
        """Start the lab (again, after ``close()``: a fresh lab, nothing of the old one kept)."""
        self._closed = False
        if not self._started:
            self.backend.start()
            self._started = True
            self._install_tools()
        return self

    def _install_tools(self) -> None:
        """The article's tools at the article's paths (``/vagrant/tools/...``) on the vm."""
        for path, text in tool_files().items():
            try:
                self.backend.write_file("vm", path, text)
            except NotImplementedError:
                return

    def close(self) -> None:
        for n in list(self.jobs):
            job = self.jobs.pop(n)
            try:
                job.signal(signal.SIGTERM)
                job.wait(timeout=5)
            except Exception:  # noqa: BLE001 - closing must not fail half-way
                pass
        self.backend.close()
        self._started = False
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LabError(f"this {self.backend.name} lab is closed; reopen it with `lab = course.open_lab()` "
                           "in a notebook (or `lab.start()`: a fresh lab, its old state is gone)")

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def kernel(self) -> str:
        return self.backend.kernel

    def describe(self) -> str:
        return self.backend.describe()

    # -- running commands -------------------------------------------------------------
    def run(self, line: str) -> Optional[CommandResult]:
        """Run one command line; ``None`` for a blank line or a comment.

        Problems with the line itself come back as a one-line ``nfteach: ...`` result with
        status 2; the lab stays usable. A closed lab raises ``LabError`` (one line).
        """
        self._check_open()
        self.start()
        try:
            parsed = parse_line(line)
        except LabError as e:
            shown = line.strip()
            machine = "host" if shown.startswith("@host ") else "vm"
            if shown.startswith("@host "):
                shown = shown[6:].lstrip()
            if len(shown) > 200:  # a huge rejected line is not echoed back whole
                shown = shown[:200] + "..."
            return self._record(CommandResult(machine, shown, f"nfteach: {e}\n", 2))
        if parsed is None:
            return None
        try:
            out = self._run_parsed(parsed)
        except LabError as e:
            out = Output.of(stderr=f"nfteach: {e}\n", status=2)
        except Exception as e:  # noqa: BLE001 - a learner never sees a traceback
            msg = " ".join(str(e).split())[:200]
            out = Output.of(stderr=f"nfteach: internal error in the {self.backend.name} backend "
                            f"({type(e).__name__}: {msg}); the lab is still usable\n", status=70)
        return self._record(CommandResult(parsed.machine, parsed.display, out.text, out.status))

    def script(self, text: str) -> Transcript:
        """Run several lines (a script); returns the transcript of the commands that ran."""
        t = Transcript(self.backend.name, self.backend.kernel)
        for line in text.splitlines():
            r = self.run(line)
            if r is not None:
                t.append(r)
        return t

    def __call__(self, text: str) -> Transcript:
        return self.script(text)

    def write_file(self, path: str, text: str, machine: str = "vm") -> None:
        """Put a file (a bpftrace or drgn script) on a lab machine: ``path`` is absolute,
        without ``..`` (a one-line LabError otherwise), on every backend."""
        lab_path(path)
        self._check_open()
        self.start()
        self.backend.write_file(machine, path, text)

    def drgn(self):
        """A ``drgn.Program`` of this lab's kernel: synthesized from the model on ``sim``,
        over QMP on ``vm``, ``/proc/kcore`` on ``live`` where the kernel allows it."""
        from .introspect import program

        self._check_open()
        self.start()
        return program(self)

    def _record(self, r: CommandResult) -> CommandResult:
        self.history.append(r)
        return r

    def _run_parsed(self, p: ParsedLine) -> Output:
        name = p.argv[0]
        if name == "kill" and not p.filters:
            return self._kill(p.argv)
        if name == "wait" and not p.filters:
            return self._wait(p.argv)
        if name == "sleep" and not p.filters:
            return self._sleep(p.argv)
        if name == "jobs":
            text = "".join(f"[{n}]  Running                 {self._job_lines[n]}\n" for n in sorted(self.jobs))
            return Output.of(stdout=text)
        if name.rsplit("/", 1)[-1] not in notes.LAB_COMMANDS:
            return Output.of(stderr=notes.unknown_command(name) + "\n", status=127)
        if p.background:
            job = self.backend.spawn(p.machine, p.argv)
            if job.done():
                # it ended at once (a probe that cannot attach, a refused facility): its
                # output belongs to this step, as a terminal would show it straight away
                return job.wait(timeout=5)
            n = max(self.jobs, default=0) + 1  # bash: one more than the highest job still listed
            self.jobs[n] = job
            self._job_lines[n] = p.display
            return Output.of()
        out = self.backend.run(p.machine, p.argv)
        if not p.filters:
            return out
        text, status = out.stdout, out.status
        for f in p.filters:
            text, status = filters.apply(f, text)
        return Output((("err", out.stderr),) * bool(out.stderr) + (("out", text),) * bool(text), status)

    def _job_spec(self, spec: str) -> int:
        if not spec.startswith("%") or not spec[1:].isdigit():
            raise LabError(f"kill/wait take a job number like %1, not {spec!r}", token=spec)
        n = int(spec[1:])
        if n not in self.jobs:
            raise LabError(f"{spec}: no such job", token=spec)
        return n

    def _kill(self, argv: List[str]) -> Output:
        sig = signal.SIGTERM
        specs = []
        for a in argv[1:]:
            if a.startswith("-") and not specs:
                name = a[1:].upper().removeprefix("SIG")
                if name.isdigit():
                    sig = int(name)
                elif name in _SIGNALS:
                    sig = _SIGNALS[name]
                else:
                    raise LabError(f"kill: unknown signal {a!r} (INT, TERM, KILL, HUP)", token=a)
            else:
                specs.append(a)
        if not specs:
            raise LabError("kill: give a job number like %1", token="kill")
        outs, status = [], 0
        for n in [self._job_spec(s) for s in specs]:
            job = self.jobs.pop(n)
            job.signal(sig)
            o = job.wait(timeout=self.backend.stop_timeout)
            outs.extend(o.chunks)
        return Output(tuple(outs), status)

    def _wait(self, argv: List[str]) -> Output:
        nums = [self._job_spec(s) for s in argv[1:]] or sorted(self.jobs)
        outs, status = [], 0
        for n in nums:
            job = self.jobs.pop(n)
            o = job.wait(timeout=None)
            outs.extend(o.chunks)
            status = o.status
        return Output(tuple(outs), status)

    def _sleep(self, argv: List[str]) -> Output:
        if len(argv) != 2:
            raise LabError("sleep: give one number of seconds", token="sleep")
        try:
            secs = float(argv[1].rstrip("s"))
        except ValueError:
            raise LabError(f"sleep: invalid time interval {argv[1]!r}", token=argv[1]) from None
        if not 0 <= secs <= 3600:
            raise LabError(f"sleep: {argv[1]} is outside 0..3600 seconds", token=argv[1])
        self.backend.advance(secs)
        return Output.of()
