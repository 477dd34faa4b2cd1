"""``conntrack`` (conntrack-tools) on the model: ``-L [conntrack|unconfirmed|dying]``,
``-F``, ``-C``, ``-S``, ``--version``, with ``-p``/``-s``/``-d``/``--sport``/``--dport`` filters."""
from __future__ import annotations

from ...model.backend import Output
from ...render.ctline import conntrack_line
from ..kernel.conntrack import IPS_ASSURED, IPS_SEEN_REPLY
from . import help_text

TABLES = ("conntrack", "expect", "dying", "unconfirmed")


def format_entry(ct, timeout: int, secctx: str = "") -> str:
    o, r = ct.tuple
    return conntrack_line(6, timeout, ct.state_name, (o.src, o.dst, o.sport, o.dport),
                          (r.src, r.dst, r.sport, r.dport), ct.status, ct.mark, secctx)


def _err(ver: str, msg: str, status: int = 2) -> Output:
    return Output.of(stderr=f"conntrack v{ver} (conntrack-tools): {msg}\n"
                     "Try `conntrack -h' or 'conntrack --help' for more information.\n", status=status)


def main(kernel, ns, argv) -> Output:
    ver = kernel.profile.tools["conntrack"]
    args = argv[1:]
    if not args or args[0] in ("-h", "--help"):  # the help page captured from conntrack-tools 1.4.7
        return Output.of(stdout=help_text("conntrack").replace("{ver}", ver))
    if args[0] in ("-V", "--version"):
        return Output.of(stdout=f"conntrack v{ver} (conntrack-tools)\n")
    cmd, table, filters = None, "conntrack", {}
    i = 0
    opt_map = {"-p": "proto", "--protonum": "proto", "-s": "src", "--src": "src", "--orig-src": "src",
               "-d": "dst", "--dst": "dst", "--orig-dst": "dst", "--sport": "sport", "--orig-port-src": "sport",
               "--dport": "dport", "--orig-port-dst": "dport", "--state": "state", "-u": "status",
               "--status": "status"}
    while i < len(args):
        a = args[i]
        if a in ("-L", "--dump", "-F", "--flush", "-C", "--count", "-S", "--stats", "-D", "--delete"):
            if cmd:
                return _err(ver, "Invalid parameters")  # two commands
            cmd = {"--dump": "-L", "--flush": "-F", "--count": "-C", "--stats": "-S", "--delete": "-D"}.get(a, a)
            if i + 1 < len(args) and not args[i + 1].startswith("-"):
                if args[i + 1] not in TABLES:
                    return _err(ver, f"unknown type `{args[i + 1]}'")
                table = args[i + 1]
                i += 1
        elif a in opt_map:
            if i + 1 >= len(args):
                return _err(ver, f"option `{a}' requires an argument")
            filters[opt_map[a]] = args[i + 1]
            i += 1
        elif a in ("-n", "-o", "-e", "-E", "-I", "-U", "-G") or a.startswith("--"):
            return Output.of(stderr=f"nfteach: conntrack: option {a!r} is not modelled by the simulator "
                             "(supported: -L [conntrack|unconfirmed|dying], -D, -F, -C, -S, -p, -s, -d, --sport, --dport, --state, -u)\n",
                             status=2)
        else:
            return _err(ver, f"unknown option `{a}'")
        i += 1
    if cmd is None:
        return _err(ver, "no command specified")
    # opening the NETLINK_NETFILTER socket autoloads nfnetlink (netlink_create():
    # "net-pf-16-proto-12"); the first ctnetlink request then nf_conntrack_netlink and its
    # dependencies ("nfnetlink-subsys-1"): lsmod lists nfnetlink below them (vm 5.10)
    kernel.request_module("nfnetlink")
    kernel.request_module("nf_conntrack_netlink")
    ct_state = ns.ct
    if cmd == "-F":
        if table in ("conntrack",) and ct_state is not None:
            kernel.conntrack.flush(ns)
        return Output.of(stderr=f"conntrack v{ver} (conntrack-tools): connection tracking table has been emptied.\n")
    if table == "expect":
        entries = []
    elif ct_state is None:
        entries = []
    elif table == "unconfirmed":
        entries = [ct for lst in ct_state.unconfirmed for ct in lst] if kernel.profile.has_unconfirmed_list else []
    elif table == "dying":
        entries = list(ct_state.dying) if kernel.profile.has_unconfirmed_list else []
    else:
        kernel.conntrack.gc(ns)
        entries = ct_state.entries()
    entries = [ct for ct in entries if _match(ct, filters)]
    if cmd == "-D":
        # each deleted entry is printed as -L prints it; nothing deleted exits 1 (live 6.18)
        shown = "".join(format_entry(ct, kernel.conntrack.expires(ct), kernel.profile.secctx) + "\n" for ct in entries)
        for ct in entries:
            kernel.conntrack.nf_ct_delete(ct)
        return Output((("out", shown),) * bool(shown) + (("err", f"conntrack v{ver} (conntrack-tools): {len(entries)} "
                      "flow entries have been deleted.\n"),), 0 if entries else 1)
    if cmd == "-C":
        return Output.of(stdout=f"{len(entries)}\n")
    if cmd == "-S":
        lines = []
        for cpu in range(kernel.profile.ncpus):
            st = ct_state.stat if (ct_state and cpu == 0) else {}
            fields = kernel.profile.extra.get("ct_stat_fields", ["found", "invalid", "insert", "insert_failed",
                                                                 "drop", "early_drop", "error", "search_restart"])
            off = kernel.profile.extra.get("ct_stat_uncounted", [])
            # conntrack-tools nfct_stats_cb: printf("cpu=%-4u\t", ...)
            lines.append(f"cpu={cpu:<4}\t" + " ".join(f"{f}={0 if f in off else st.get(f, 0)}" for f in fields) + " ")
        return Output.of(stdout="\n".join(lines) + "\n")
    out = "".join(format_entry(ct, kernel.conntrack.expires(ct), kernel.profile.secctx) + "\n" for ct in entries)
    return Output((("out", out),) * bool(out) + (("err", f"conntrack v{ver} (conntrack-tools): {len(entries)} flow entries have been shown.\n"),), 0)


def _match(ct, f) -> bool:
    o = ct.tuple[0]
    if "proto" in f and f["proto"] not in ("tcp", "6"):
        return False
    for key, val in (("src", o.src), ("dst", o.dst)):
        if key in f and f[key] != val:
            return False
    for key, val in (("sport", o.sport), ("dport", o.dport)):
        if key in f and f[key] != str(val):
            return False
    if "state" in f and f["state"].upper() != ct.state_name:
        return False
    if "status" in f:
        names = {"ASSURED": IPS_ASSURED, "SEEN_REPLY": IPS_SEEN_REPLY}
        for want in f["status"].upper().split(","):
            if want == "UNREPLIED":
                if ct.status & IPS_SEEN_REPLY:
                    return False
            elif not ct.status & names.get(want, 0):
                return False
    return True
