"""``nfteach render hooks|path|lifecycle``: a picture of a lab after a script, as SVG/PNG/DOT.

    nfteach render hooks [--backend B] [--kernel K] [--machine vm|host] [--compare K2]
                         [--script FILE] [--command LINE ...] -o OUT.svg
    nfteach render path|lifecycle [--kernel K] [--compare K2] [--script FILE] [--command LINE ...] -o OUT.svg

``hooks`` draws the hook chain after the script and commands ran. ``path`` and
``lifecycle`` run the script as set-up and watch the *last* command (the last ``--command``,
or else the script's last line). ``-o`` picks the format from its suffix: .svg, .png, .dot.
"""
from __future__ import annotations

import sys
from typing import List

FORMATS = ("svg", "png", "dot", "gv", "pdf")


def add_subcommands(subparsers) -> None:
    """Add ``render`` (with ``hooks``, ``path``, ``lifecycle``) to ``nfteach``'s sub-parsers."""
    from .backends import DEFAULT_BACKEND

    rp = subparsers.add_parser("render", help="draw the hook chain, a packet's path or a conntrack entry's life")
    sub = rp.add_subparsers(dest="what", metavar="hooks|path|lifecycle")
    helps = {
        "hooks": "the hook chain of a machine after the script ran (any backend)",
        "path": "each callback the last command's packets met, verdicts and conntrack state (sim)",
        "lifecycle": "the conntrack entries the last command created or destroyed (sim)",
    }
    for what, text in helps.items():
        p = sub.add_parser(what, help=text)
        p.add_argument("--backend", "-b", default=DEFAULT_BACKEND, help="sim (default), live or vm")
        p.add_argument("--kernel", "-k", default=None, help="kernel profile: 5.10, 6.1, 6.12, 6.18")
        p.add_argument("--compare", metavar="K2", default=None,
                       help="draw the same scenario on a second kernel profile side by side (sim)")
        p.add_argument("--machine", default="vm", choices=("vm", "host"), help="whose hooks (hooks only)")
        p.add_argument("--script", metavar="FILE", help="a file of lab commands (- for stdin)")
        p.add_argument("--command", "-c", action="append", metavar="LINE", help="a command line (repeatable)")
        p.add_argument("-o", "--output", required=True, metavar="OUT.svg", help="where to write (.svg .png .dot)")
        p.set_defaults(func=_render, what=what)
    rp.set_defaults(func=lambda args: (rp.print_help(), 2)[1])


def _lines(args) -> List[str]:
    lines: List[str] = []
    if args.script:
        text = sys.stdin.read() if args.script == "-" else open(args.script, encoding="utf-8").read()
        lines += text.splitlines()
    lines += args.command or []
    return [ln for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _render(args) -> int:
    from . import observe
    from .backends import chosen_kernel
    from .lab import Lab
    from .model.errors import LabError

    fmt = args.output.rsplit(".", 1)[-1].lower() if "." in args.output else ""
    if fmt not in FORMATS:
        print(f"nfteach render: -o needs a file name ending in .svg, .png or .dot, not {args.output!r}", file=sys.stderr)
        return 2
    try:
        lines = _lines(args)
    except OSError as e:
        print(f"nfteach render: cannot read {args.script}: {e.strerror}", file=sys.stderr)
        return 2
    if args.what != "hooks" and not lines:
        print(f"nfteach render {args.what}: give the command to watch (--command LINE or --script FILE)", file=sys.stderr)
        return 2
    setup, last = (lines, None) if args.what == "hooks" else (lines[:-1], lines[-1])
    try:
        if args.compare:
            if args.backend != "sim":
                print("nfteach render: --compare runs two kernel profiles of the sim backend", file=sys.stderr)
                return 2
            if args.what == "lifecycle":
                print("nfteach render: --compare draws hooks or path", file=sys.stderr)
                return 2
            result = observe.compare("\n".join(setup), last, (args.kernel or "5.10", args.compare), args.machine)
        else:
            with Lab(args.backend, kernel=chosen_kernel(args.backend, args.kernel)) as lab:
                for ln in setup:
                    r = lab.run(ln)
                    if r is not None and r.status != 0:
                        print(f"nfteach render: note: `{r.command}` exited {r.status}: {r.output.strip()[:200]}",
                              file=sys.stderr)
                if args.what == "hooks":
                    result = observe.hooks(lab, args.machine)
                elif args.what == "path":
                    result = observe.path(lab, last)
                else:
                    result = observe.lifecycle(lab, last)
    except LabError as e:
        print(f"nfteach: {e}", file=sys.stderr)
        return 2
    g = result.graph()
    try:
        if fmt in ("dot", "gv"):
            data = g.source.encode()
        else:
            data = g.pipe(format=fmt)
    except Exception as e:  # noqa: BLE001 - graphviz missing or failing: one line
        print(f"nfteach render: Graphviz failed ({type(e).__name__}: {e}); is `dot` installed "
              "(Debian: apt-get install graphviz)?", file=sys.stderr)
        return 1
    with open(args.output, "wb") as f:
        f.write(data)
    print(f"nfteach render: wrote {args.output}", file=sys.stderr)
    return 0
