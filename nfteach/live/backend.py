"""The ``live`` backend: this machine's kernel, the lab's two hosts as network namespaces.

>>> from nfteach import Lab
>>> with Lab("live") as lab:                      # as root, on Linux
...     print(lab.run("conntrack -L").output, end="")
conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.

What it does, in order (see ``docs/lab-contract.md``):

* ``start()`` reaps leftovers of crashed labs (``namespaces.reap_stale``), creates the
  ``vm`` and ``host`` namespaces, and opens the tcp/22 session (``session.Session``).
* ``run()`` does one synchronous keystroke on the session, then runs the command:
  the real tool inside the namespace and a bubblewrap sandbox
  (``ip netns exec NS bwrap ... -- TOOL ARGS``, see ``sandbox.py``), the
  ``modprobe``/``rmmod`` emulation of a built-in nf_conntrack, or a one-line refusal.
* ``close()`` stops every process it started (by pid) and deletes the namespaces.
"""
from __future__ import annotations

import atexit
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import weakref
from typing import Dict, List, Optional, Sequence

from ..model import notes
from ..model.backend import Backend, Output
from ..model.errors import BackendUnavailable, LabError
from ..model.labpath import lab_path
from . import capability, commands, sandbox
from .capability import TRACEFS_EXEC
from .namespaces import PREFIX, LabNamespaces, reap_stale
from .runner import LiveJob, run_argv
from .session import Session

log = logging.getLogger(__name__)

MACHINES = ("vm", "host")
#: tools that need tracefs (bpftrace finds tracepoints and kprobe_events there)
TRACEFS_TOOLS = ("bpftrace", "cat")
STDBUF = ["stdbuf", "-oL"]
#: bpftrace probe names (and short forms) -> the capability that must work
_BPF_KIND = {"kprobe": "kprobe", "kretprobe": "kprobe", "k": "kprobe", "kr": "kprobe",
             "kfunc": "kfunc", "kretfunc": "kfunc", "fentry": "kfunc", "fexit": "kfunc",
             "f": "kfunc", "fr": "kfunc"}
_BPF_PROBE = re.compile(r"(?:^|[\s,{};/])(kprobe|kretprobe|kfunc|kretfunc|fentry|fexit|kr|k|fr|f):")


_OPEN: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """A program that forgot close(): its labs are removed when Python exits (a SIGTERM or
    SIGKILL, which skip this, is the reaper's: ``namespaces.start_reaper``)."""
    for b in list(_OPEN):
        b.close()


def kernel_profile(release: Optional[str] = None) -> str:
    """Profile name of a kernel release: ``"6.18"`` for 6.18.x, else major.minor."""
    release = release or platform.release()
    parts = release.split(".")
    return ".".join(p.split("-")[0] for p in parts[:2])


class LiveBackend(Backend):
    """The lab on this machine's own kernel (needs root and ``ip netns``)."""

    name = "live"

    def __init__(self, kernel: Optional[str] = None, timeout: float = 120.0, **opts):
        self.kernel = kernel_profile()
        if kernel not in (None, "", "live", self.kernel):
            raise BackendUnavailable(
                f"the live backend runs this machine's kernel ({platform.release()}), not {kernel}; "
                "use --backend vm or --backend sim for other kernels", token=kernel)
        self.timeout = timeout
        self.options = opts
        self.ns: Optional[LabNamespaces] = None
        self.session: Optional[Session] = None
        self.tmpdir: Optional[str] = None
        self.files: Dict[str, str] = {}
        self.jobs: List[LiveJob] = []
        self._noted = False
        self._ct_emulated = False
        self._caps: Optional[dict] = None

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        if self.ns is not None:
            return
        problem = capability.why_not_live() or sandbox.available()
        if problem:
            raise BackendUnavailable(problem)
        reap_stale()
        self.tmpdir = tempfile.mkdtemp(prefix=PREFIX)
        ns = LabNamespaces(tmpdir=self.tmpdir)
        self.ns = ns
        _OPEN.add(self)
        try:
            self.seccomp = os.path.join(self.tmpdir, "seccomp.bpf")
            why = sandbox.write_seccomp(self.seccomp)
            if why:
                raise BackendUnavailable(f"the live backend's sandbox needs a seccomp filter: {why}")
            ns.create()
            self._check_sandbox()
            self.session = Session(ns.exec_prefix, ns.record_process)
            self.session.start()
        except Exception:
            self.close()
            raise

    def _check_sandbox(self) -> None:
        """Prove, before the first lab command, that the sandbox holds on this machine:
        each tool's capabilities exactly, no_new_privs and the seccomp filter on (a bwrap
        that cannot drop capabilities keeps them all)."""
        for tool in ("cat", "bpftrace", "nft"):
            argv = self._full_argv("vm", ["cat", "/proc/self/status"])
            argv = [a for a in argv if a != str(TRACEFS_EXEC)]
            boxed = argv[argv.index("bwrap"):]
            boxed = sandbox.wrap(boxed[boxed.index("--") + 1:], files_dir=self.tmpdir, tool=tool,
                                 seccomp=self.seccomp)
            out = run_argv([*self.ns.exec_prefix("vm"), *boxed], timeout=30)
            fields = dict(ln.split(":", 1) for ln in out.stdout.splitlines() if ":" in ln)
            want = sandbox.mask(sandbox.caps_for(tool))
            got = {k: int(fields.get(k, "-1").strip() or "-1", 16) for k in ("CapEff", "CapPrm", "CapAmb")}
            # no_new_privs: whatever the command executes (setuid, a root exec) gets no more
            if out.status != 0 or got["CapEff"] != want or got["CapPrm"] != want or got["CapAmb"] & ~want \
                    or fields.get("NoNewPrivs", "").strip() != "1" or fields.get("Seccomp", "").strip() != "2":
                raise BackendUnavailable(
                    f"the live backend's sandbox does not hold here ({tool}: capabilities {got}, "
                    f"expected {want:#x}, seccomp {fields.get('Seccomp', '?').strip()}; {out.stderr.strip()[:200]})")

    def close(self) -> None:
        for job in self.jobs:
            try:
                job.stop()
            except Exception:  # noqa: BLE001 - closing must not stop half-way
                log.exception("stopping job %s", job.argv)
        self.jobs = []
        self._release("session", "stop")
        self._release("ns", "destroy")
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        self.files = {}
        self._noted = False
        self._ct_emulated = False

    def describe(self) -> str:
        lab = self.ns.lab_id if self.ns else "not started"
        return f"backend live, kernel {self.kernel} ({platform.release()}), lab {lab}"

    # -- commands ---------------------------------------------------------------------
    def _machine(self, machine: str) -> str:
        if machine not in MACHINES:
            raise LabError(f"unknown machine {machine!r}; the lab has vm and host", token=machine)
        return machine

    def _full_argv(self, machine: str, argv: Sequence[str]) -> List[str]:
        """``ip netns exec NS [tracefs] bwrap ... -- stdbuf -oL TOOL ARGS``: the lab's
        files by their lab paths, everything else confined by the sandbox."""
        # stdbuf -oL: line-buffered stdout, so stdout and stderr interleave as on a
        # terminal (conntrack -L prints its entries, then the summary on stderr)
        args = [self.files.get(a, a) for a in argv]
        if argv[0] == "dmesg":
            # the kernel log as a file the sandbox may read: dmesg runs without
            # CAP_SYSLOG, so it cannot clear the machine's log or change its console
            args[1:1] = ["-F", self._kernel_log()]
        boxed = sandbox.wrap([*STDBUF, *args], files_dir=self.tmpdir or "", tool=argv[0],
                             seccomp=getattr(self, "seccomp", ""))
        if argv[0] in TRACEFS_TOOLS:
            # tracefs mounted in the command's own mount namespace (ip netns exec made
            # one), then bound read-only into the sandbox with the rest of /sys
            return [*self.ns.exec_prefix(machine), sys.executable, "-I", str(TRACEFS_EXEC), *boxed]
        return [*self.ns.exec_prefix(machine), *boxed]

    def _kernel_log(self) -> str:
        """The machine's kernel log, read by the lab (``dmesg -r``, fixed arguments) into
        the lab's files directory, for the learner's ``dmesg`` to read with ``-F``."""
        path = os.path.join(self.tmpdir, "kernel.log")
        out = run_argv(["dmesg", "-r"], timeout=30)
        with open(path, "w") as f:
            f.write(out.stdout)
        return path

    def keystroke(self) -> bool:
        return bool(self.session and self.session.keystroke())

    def run(self, machine: str, argv: Sequence[str]) -> Output:
        self.start()
        machine = self._machine(machine)
        argv = list(argv)
        if not argv:
            return Output.of(stderr="nfteach: empty command\n", status=2)
        try:
            commands.check(argv)
        except commands.UnknownCommand as e:
            return Output.of(stderr=f"nfteach: {e}\n", status=127)
        except LabError as e:
            return Output.of(stderr=f"nfteach: {e}\n", status=2)
        refusal = self._bpftrace_refusal(argv)
        if refusal:
            return Output.of(stderr=f"nfteach: {refusal}\n", status=2)
        self.keystroke()
        name = argv[0]
        if name in ("modprobe", "rmmod"):
            return self._modules(argv)
        if name == "list-nf-hooks":
            return self._list_nf_hooks(argv)
        if name in ("drgn", "trace-cmd"):
            return self._refuse_facility(name)
        return run_argv(self._full_argv(machine, argv), timeout=self.timeout, name=name)

    def spawn(self, machine: str, argv: Sequence[str]) -> LiveJob:
        self.start()
        machine = self._machine(machine)
        argv = list(argv)
        commands.check(argv)  # LabError -> the lab reports it as one line
        if argv[0] in commands.EMULATED + commands.PROBED:
            raise LabError(f"{argv[0]} cannot run in the background on the live backend", token=argv[0])
        refusal = self._bpftrace_refusal(argv)
        if refusal:
            raise BackendUnavailable(refusal, token="bpftrace")
        self.keystroke()
        job = LiveJob(machine, argv, self._full_argv(machine, argv), on_exit=self.ns.forget_process,
                      timeout=self.timeout)
        self.ns.record_process(job.pid)
        self.jobs.append(job)
        if argv[0] == "bpftrace" and job.wait_for("Attaching", timeout=30):
            # bpftrace prints "Attaching N probes..." before it attaches them: give it the
            # moment it needs, so the next command's packets are seen (as a person would wait)
            time.sleep(1.5)
        return job

    def write_file(self, machine: str, path: str, text: str) -> None:
        self.start()
        self._machine(machine)
        lab_path(path)
        base = os.path.basename(path) or "file"
        local = os.path.join(self.tmpdir, f"{len(self.files)}-{base}")
        with open(local, "w") as f:
            f.write(text)
        self.files[path] = local

    # -- emulation and probes ---------------------------------------------------------
    def _note(self) -> List[tuple]:
        if self._noted:
            return []
        self._noted = True
        return [("err", notes.BUILTIN_MODPROBE_NOTE + "\n")]

    def _nft_all(self, nft_argvs) -> Output:
        for m in MACHINES:
            for a in nft_argvs:
                o = run_argv([*self.ns.exec_prefix(m), "nft", *a], timeout=30)
                if o.status != 0:
                    return o
        return Output.of()

    def _modules(self, argv: List[str]) -> Output:
        name = argv[0]
        remove = name == "rmmod" or "-r" in argv[1:] or "--remove" in argv[1:]
        mods = [a for a in argv[1:] if not a.startswith("-") and "=" not in a]
        params = [a for a in argv[1:] if "=" in a and not a.startswith("-")]
        if remove:
            mods_all = mods
        else:
            mods_all = mods[:1]
            params = params + [a for a in mods[1:] if "=" in a]
        if not mods_all or not any(m.replace("-", "_").startswith("nf_conntrack") for m in mods_all):
            if not os.path.exists("/proc/modules"):
                # CONFIG_MODULES is off: the real tool can change nothing, and its
                # error is the truth about this kernel
                return run_argv(self._full_argv("vm", argv), timeout=30, name=name)
            return Output.of(stderr=(
                f"nfteach: {name}: only nf_conntrack is emulated on the live backend; "
                "the lab never loads or unloads modules of this machine\n"), status=2)
        if remove:
            if not self._ct_emulated:
                return Output(tuple(self._note()), 0)
            o = self._nft_all(notes.BUILTIN_DISABLE_HOOKS_NFT)
            self._ct_emulated = False
            return Output(tuple(self._note()) + o.chunks, o.status)
        if mods_all[0].replace("-", "_") != "nf_conntrack":
            return Output.of(stderr=f"nfteach: modprobe: only nf_conntrack is emulated, not {mods_all[0]}\n",
                             status=2)
        if "enable_hooks=1" not in params:
            bad = [p for p in params if p not in ("enable_hooks=0",)]
            if bad:
                return Output.of(stderr=f"nfteach: modprobe: parameter {bad[0]!r} is not emulated "
                                        "(supported: enable_hooks=1)\n", status=2)
            return Output.of()
        if self._ct_emulated:
            return Output(tuple(self._note()), 0)
        o = self._nft_all(notes.BUILTIN_ENABLE_HOOKS_NFT)
        self._ct_emulated = o.status == 0
        return Output(tuple(self._note()) + o.chunks, o.status)

    def _bpftrace_refusal(self, argv: List[str]) -> Optional[str]:
        """A one-line reason when a bpftrace program uses probe types that do not attach here."""
        if argv[0] != "bpftrace":
            return None
        texts = []
        for i, a in enumerate(argv[1:], 1):
            if argv[i - 1] == "-e":
                texts.append(a)
            elif a in self.files:  # only the lab's files: the sandbox sees no others
                with open(self.files[a], errors="replace") as f:
                    texts.append(f.read())
        kinds = set()
        for t in texts:
            for m in _BPF_PROBE.finditer(t):
                kinds.add(_BPF_KIND[m.group(1)])
        if not kinds:
            return None
        works = capability.bpftrace_cached()
        bad = sorted(k for k in kinds if works.get(k) is not True)
        if not bad:
            return None
        why = {"kprobe": "kprobes do not attach on this kernel (no kprobe_events: CONFIG_KPROBES off)",
               "kfunc": "kfunc/fentry probes are not available with this kernel and bpftrace"}
        return f"bpftrace: {'; '.join(why[k] for k in bad)}; run it with --backend vm"

    def caps(self) -> dict:
        if self._caps is None:
            # never probe inside the lab's namespaces: a throw-away table there would
            # shift the nft handles the learner sees
            self._caps = capability.probe_cached()
        return self._caps

    def _list_nf_hooks(self, argv: List[str]) -> Output:
        c = self.caps()
        if c.get("nft_list_hooks"):
            return run_argv([*self.ns.exec_prefix("vm"), "nft", "list", "hooks"], timeout=30)
        return Output.of(stderr=(
            "nfteach: list-nf-hooks: this kernel has neither `nft list hooks` "
            "(CONFIG_NETFILTER_NETLINK_HOOK) nor /proc/kcore with vmlinux debug info for drgn; "
            "run it with --backend vm (or --backend sim)\n"), status=2)

    def _refuse_facility(self, name: str) -> Output:
        c = self.caps()
        if name == "drgn":
            why = "drgn needs /proc/kcore and vmlinux debug info" + (
                "; /proc/kcore is missing" if not c.get("kcore") else "; no vmlinux debug info was found")
        else:
            missing = []
            if not c.get("tools", {}).get("trace-cmd"):
                missing.append("trace-cmd is not installed")
            if not capability.ftrace_probe().get("ftrace_function"):
                missing.append("the ftrace function tracers are not available on this kernel")
            why = "; ".join(missing) or "not wired into the live backend"
        return Output.of(stderr=f"nfteach: {name}: {why}; run it with --backend vm\n", status=2)

    # -- structured conntrack state ---------------------------------------------------
    def drgn_program(self):
        from ..introspect import kcore_program

        return kcore_program()

    def conntrack_entries(self, machine: str = "vm"):
        """The conntrack table of ``machine`` read over netlink (pyroute2), as ``CtEntry`` objects."""
        from .netlink_ct import dump_entries

        self.start()
        return dump_entries(self.ns.exec_prefix(self._machine(machine)))
