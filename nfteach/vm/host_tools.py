"""What the vm backend runs on this machine rather than in the guest: ``list-nf-hooks``
and ``drgn``, attached to the guest's memory over QMP with the kernel's debug files.
Each function takes the ``VmBackend`` as ``self``; drgn reads only the lab's own files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

from ..model.backend import Output
from ..model.labpath import inside
from . import fetch


def debug_files(self) -> List[Path]:
    """vmlinux + the debug .ko of each loaded module we have one for."""
    kdir = fetch.kernel_dir(self.kernel) / "debug"
    mods = self.exec_raw(["cat", "/proc/modules"]).stdout.split("\n")
    files = [kdir / "vmlinux"]
    for line in mods:
        if line:
            ko = kdir / (line.split()[0] + ".ko")
            if ko.exists():
                files.append(ko)
    return files

def run(self, argv: List[str]) -> Output:
    """``list-nf-hooks`` and ``drgn`` run on this machine, attached to the guest over QMP."""
    try:
        import drgn  # noqa: F401
    except ImportError:
        return Output.of(stderr=f"nfteach: {argv[0]} needs drgn on this machine: pip install drgn\n", status=2)
    files = debug_files(self)
    if argv[0] == "list-nf-hooks":
        if len(argv) > 1:
            return Output.of(stderr=f"nfteach: list-nf-hooks takes no arguments (got {argv[1]!r})\n", status=2)
        from ..introspect.hooks import format_hooks, netns_nf_hooks
        from .program import qemu_program

        try:
            prog = qemu_program(self.qemu.free_qmp(), files[0], files[1:])
            text = format_hooks(netns_nf_hooks(prog))
            del prog  # closes its QMP connection
            return Output.of(stdout=text)
        except Exception as e:  # noqa: BLE001 - one line, never a traceback
            return Output.of(stderr=f"nfteach: list-nf-hooks: {type(e).__name__}: {e}\n", status=1)
    # drgn [ARGS]: the drgn CLI on this machine, attached to the guest
    args, refusal = drgn_args(self, argv)
    if refusal:
        return Output.of(stderr=f"nfteach: drgn: {refusal}\n", status=2)
    cmd = [sys.executable, "-m", "drgn", "--qemu", str(self.qemu.free_qmp()), "--no-default-symbols"]
    for f in files:
        cmd += ["-s", str(f)]
    if not args:
        return Output.of(stderr="nfteach: drgn needs -e CODE or a script here (no interactive prompt)\n", status=2)
    try:
        p = subprocess.run(cmd + args, capture_output=True, text=True, timeout=self.command_timeout,
                           stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        return Output.of(stderr=f"nfteach: drgn did not finish within {self.command_timeout:g} s "
                                "and was stopped\n", status=124)
    return Output.of(stdout=p.stdout, stderr=p.stderr, status=p.returncode)

def drgn_args(self, argv: List[str]):
    """(arguments for drgn on this machine, refusal): ``-q``, ``-e CODE [ARGS]`` or a
    script the lab wrote (``Lab.write_file``) and its arguments; drgn reads no other
    file of this machine, and attaches to nothing but the guest."""
    args: List[str] = []
    rest = list(argv[1:])
    while rest:
        a = rest.pop(0)
        if a in ("-q", "--quiet"):
            args.append(a)
        elif a == "-e":
            return args + [a, *rest], None
        elif a.startswith("-"):
            return [], (f"option {a!r} is not available in the lab "
                        "(supported: -q, -e CODE, a script written with lab.write_file)")
        elif a in self._files:
            return args + [host_copy(self, a), *rest], None
        else:
            return [], f"{a!r} is not a file of the lab (write it with lab.write_file first)"
    return args, None

def host_copy(self, path: str) -> str:
    dest = inside(self.qemu.run_dir / "files", path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(self._files[path])
    return str(dest)
