"""Command-line pieces of the ``vm`` backend, wired into ``nfteach`` by ``nfteach/cli.py``.

``add_subcommands(subparsers)`` adds::

    nfteach vm fetch [--kernel K]...     download kernels (+ debug info) and build the guest
    nfteach vm build [--kernel K]... [--force]   (+ the saved, booted guest labs restore)
    nfteach vm up --kernel K             boot a guest and keep it running (Ctrl-C stops it)
    nfteach vm status                    what is cached, which guests run
    nfteach vm down                      remove run directories of guests that are gone
    nfteach vm exec --kernel K -- CMD... boot, run one lab command line, stop
    nfteach vm derive --kernel K [--no-guest]  read the kernel's facts into profiles/K.derived.toml
    nfteach capture --kernel K [--out DIR] [SCENARIO...]

``run(args)`` carries out a parsed command and returns the exit status.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from ..model.profile import DEFAULT_KERNEL
from . import fetch

log = logging.getLogger("nfteach.vm")

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
GOLDEN = Path(__file__).resolve().parent.parent.parent / "tests" / "golden"


def _progress(msg: str) -> None:
    sys.stderr.write(f"nfteach: {msg}\n")
    sys.stderr.flush()


def add_subcommands(subparsers) -> None:
    vm = subparsers.add_parser("vm", help="real Debian kernels under QEMU")
    vsub = vm.add_subparsers(dest="vm_command", required=True)
    for name, helptext in (("fetch", "download kernels, debug info and the userland"),
                           ("build", "(re)build the guest disk images and the saved, booted guests")):
        p = vsub.add_parser(name, help=helptext)
        p.add_argument("--kernel", action="append", choices=list(fetch.KERNELS),
                       help="kernel to prepare (repeatable; default: all)")
        p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p = vsub.add_parser("up", help="boot a guest and keep it running until Ctrl-C")
    p.add_argument("--kernel", choices=list(fetch.KERNELS), default=os.environ.get("NFTEACH_KERNEL") or DEFAULT_KERNEL,
                   help=f"kernel (default $NFTEACH_KERNEL, else {DEFAULT_KERNEL})")
    vsub.add_parser("status", help="cached kernels and running guests")
    vsub.add_parser("down", help="remove leftovers of guests that are gone")
    p = vsub.add_parser("exec", help="boot a guest, run lab command lines, stop it")
    p.add_argument("--kernel", choices=list(fetch.KERNELS), default=os.environ.get("NFTEACH_KERNEL") or DEFAULT_KERNEL,
                   help=f"kernel (default $NFTEACH_KERNEL, else {DEFAULT_KERNEL})")
    p.add_argument("line", nargs="+", help="a lab command line (quote it), or several")
    p = vsub.add_parser("derive", help="read the facts of a fetched kernel into its profile (K.derived.toml)")
    p.add_argument("--kernel", choices=list(fetch.KERNELS), required=True)
    p.add_argument("--no-guest", action="store_true", help="package files only: no lsmod sizes, no tool versions")
    p.add_argument("--out", type=Path, default=None, help="file to write (default nfteach/model/profiles/K.derived.toml)")
    cap = subparsers.add_parser("capture", help="run the scenarios on a real kernel, write golden files")
    cap.add_argument("--kernel", required=True, choices=list(fetch.KERNELS))
    cap.add_argument("--out", type=Path, default=None, help="directory (default tests/golden/K)")
    cap.add_argument("scenario", nargs="*", help="scenario names (default: every *.lab)")


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="nfteach: %(message)s")
    if getattr(args, "vm_command", None) is None:
        return capture(args.kernel, args.out, args.scenario)
    cmd = args.vm_command
    if cmd in ("fetch", "build"):
        from .disk import build_image
        from .mirror import NoMirror

        for k in args.kernel or list(fetch.KERNELS):
            t = time.monotonic()
            try:
                build_image(k, force=args.force and cmd == "build")
            except NoMirror as e:
                sys.stderr.write(f"nfteach: {e}\n")
                return 2
            if cmd == "build":
                _save_guest(k, args.force)
            log.info("kernel %s ready (%.0f s)", k, time.monotonic() - t)
        return 0
    if cmd == "status":
        return status()
    if cmd == "down":
        from .qemu import clean_stale_runs

        log.info("removed %d stale run directories", clean_stale_runs())
        return 0
    if cmd == "up":
        return up(args.kernel)
    if cmd == "exec":
        return exec_lines(args.kernel, args.line)
    if cmd == "derive":
        from ..fidelity import derive

        return derive.run(args.kernel, guest=not args.no_guest, out=args.out)
    raise SystemExit(f"unknown vm command {cmd}")


def _save_guest(kernel: str, force: bool) -> None:
    """The saved, booted guest new labs restore (nfteach/vm/saved.py), for this machine's
    accelerator and the default guest memory; not fatal: labs then boot cold."""
    from .backend import VmBackend
    from .qemu import qemu_binary
    from .saved import SavedStateError, cold_only

    if not qemu_binary() or cold_only():
        log.info("kernel %s: no saved guest made (%s)", kernel,
                 "no qemu-system-x86_64" if not qemu_binary() else "NFTEACH_VM_COLD is set")
        return
    try:
        VmBackend(kernel=kernel).save_guest(progress=None, force=force)
    except SavedStateError as e:
        log.warning("kernel %s: %s; labs will boot the kernel instead", kernel, e)


def status() -> int:
    from .disk import image_dir
    from .qemu import runs_dir, stale_runs

    out = [f"cache: {fetch.cache_dir()}"]
    for k in fetch.KERNELS:
        m = fetch.read_manifest(k)
        img = "image built" if (image_dir(k) / "disk.img").exists() else "no image"
        if isinstance(m, fetch.DamagedManifest) or (m is not None and "release" not in m):
            out.append(f"kernel {k}: damaged manifest (run `nfteach vm fetch --kernel {k}`)")
        else:
            out.append(f"kernel {k}: " + (f"{m['release']} ({img})" if m else "not fetched"))
    stale = set(stale_runs())
    runs = sorted(runs_dir().iterdir()) if runs_dir().is_dir() else []
    for d in runs:
        out.append(f"guest {d.name}: {'gone (run `nfteach vm down`)' if d in stale else 'running'}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def up(kernel: str) -> int:
    from .backend import VmBackend

    b = VmBackend(kernel=kernel)
    b.start()
    _progress(f"{b.describe()} is up; QMP at {b.qemu.qmp_path}; Ctrl-C stops it")
    try:
        while b.qemu.alive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        b.close()
    return 0


def exec_lines(kernel: str, lines: List[str]) -> int:
    from ..lab import Lab
    from .backend import VmBackend

    status_ = 0
    with Lab(backend=VmBackend(kernel=kernel)) as lab:
        for line in lines:
            r = lab.run(line)
            if r is not None:
                sys.stdout.write(str(r) if str(r).endswith("\n") else f"{r}\n")
                status_ = r.status
    return status_


def capture(kernel: str, out: Optional[Path] = None, names: Optional[List[str]] = None) -> int:
    """Run each scenario on a fresh guest of ``kernel``; write ``<out>/<scenario>.txt``."""
    from ..lab import Lab
    from .backend import VmBackend

    out = out or GOLDEN / kernel
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(SCENARIOS.glob("*.lab"))
    if names:
        files = [f for f in files if f.stem in names]
        missing = set(names) - {f.stem for f in files}
        if missing:
            raise SystemExit(f"nfteach: no scenario {', '.join(sorted(missing))} in {SCENARIOS}")
    for f in files:
        t = time.monotonic()
        with Lab(backend=VmBackend(kernel=kernel)) as lab:
            tr = lab.script(f.read_text())
        (out / f"{f.stem}.txt").write_text(tr.text())
        _progress(f"capture {kernel}: {f.stem} ({len(tr.results)} commands, {time.monotonic() - t:.0f} s)"
                  f" -> {out / (f.stem + '.txt')}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Stand-alone entry point (``python -m nfteach.vm.cli``) until the lead wires it in."""
    parser = argparse.ArgumentParser(prog="nfteach")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
