"""``nfteach``: shell | doctor | vm | capture | profiles | tour | reset | fidelity.

    nfteach shell [--backend B] [--kernel K] [--json] (SCRIPT | -c CMD ...)
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .backends import DEFAULT_BACKEND, REGISTRY, chosen_kernel


def _shell(args) -> int:
    from .lab import Lab
    from .model.errors import LabError

    if args.script and args.command:
        print("nfteach shell: give a SCRIPT or -c commands, not both", file=sys.stderr)
        return 2
    if args.script:
        try:
            data = sys.stdin.buffer.read() if args.script == "-" else open(args.script, "rb").read()
            text = data.decode("utf-8")
        except OSError as e:
            print(f"nfteach shell: cannot read {args.script}: {e.strerror}", file=sys.stderr)
            return 2
        except UnicodeDecodeError as e:
            print(f"nfteach: {args.script}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                  file=sys.stderr)
            return 2
        lines = text.splitlines()
    elif args.command:
        lines = args.command
    else:
        print("nfteach shell: give a SCRIPT file (or - for stdin) or -c CMD", file=sys.stderr)
        return 2
    try:
        lab = Lab(args.backend, kernel=chosen_kernel(args.backend, args.kernel))
    except LabError as e:
        print(f"nfteach: {e}", file=sys.stderr)
        return 2
    status = 0
    try:
        try:
            lab.start()
        except LabError as e:
            print(f"nfteach: {e}", file=sys.stderr)
            return 2
        if not args.json:
            print(f"# {lab.describe()}", file=sys.stderr)
        results = []
        for line in lines:
            r = lab.run(line)
            if r is None:
                continue
            results.append(r)
            status = r.status
            if not args.json:
                out = r.output
                if out and not out.endswith("\n"):
                    out += "\n"
                sys.stdout.write(f"{r.machine}$ {r.command}\n{out}")
                sys.stdout.flush()
        if args.json:
            import json

            print(json.dumps([r.to_dict() for r in results], indent=1, ensure_ascii=False))
    finally:
        lab.close()
    return 0 if args.keep_going else status


def _doctor(args) -> int:
    from .model.profile import available_profiles

    print(f"nfteach: backends {', '.join(REGISTRY)}; sim kernel profiles {', '.join(available_profiles())}")
    from .vm.accel import vm_doctor_line

    print(vm_doctor_line())
    try:
        from .live.doctor import report
    except ImportError as e:
        print(f"live backend: not importable ({e})")
        return 0
    print(report())
    return 0


def _profiles(args) -> int:
    from .model.profile import available_profiles, load_profile

    for name in available_profiles():
        p = load_profile(name)
        print(f"{name:6} {p.uname_r:28} {p.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nfteach", description="Conntrack and Netfilter hooks, hands on.")
    sub = ap.add_subparsers(dest="cmd")
    sh = sub.add_parser("shell", help="run lab commands and print a transcript")
    sh.add_argument("--backend", "-b", default=DEFAULT_BACKEND, help="sim (default), live or vm")
    sh.add_argument("--kernel", "-k", default=None, help="kernel profile: 5.10 (default on sim), 6.1, 6.12, 6.18")
    sh.add_argument("--json", action="store_true", help="print one JSON array of results")
    sh.add_argument("--keep-going", action="store_true", help="exit 0 even if the last command failed")
    sh.add_argument("-c", dest="command", action="append", metavar="CMD", help="a command line (repeatable)")
    sh.add_argument("script", nargs="?", help="a file of lab commands, one per line (- for stdin)")
    sh.set_defaults(func=_shell)
    dr = sub.add_parser("doctor", help="what this machine can run (backends, tools, tracing, drgn)")
    dr.set_defaults(func=_doctor)
    pr = sub.add_parser("profiles", help="list the kernel profiles of the simulator")
    pr.set_defaults(func=_profiles)
    from . import course_cli, render_cli, reset, tour
    from .fidelity import run as fidelity

    render_cli.add_subcommands(sub)
    course_cli.add_subcommands(sub)
    tour.add_subcommands(sub)
    reset.add_subcommands(sub)
    fidelity.add_subcommands(sub)
    try:
        from .vm import cli as vm_cli

        vm_cli.add_subcommands(sub)
        for name in ("vm", "capture"):
            if name in sub.choices:
                sub.choices[name].set_defaults(func=vm_cli.run)
    except ImportError:
        pass
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
