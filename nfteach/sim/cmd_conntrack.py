"""``conntrack`` (conntrack-tools) on the model: ``-L [conntrack|unconfirmed|dying]``,
``-F``, ``-C``, ``-S``, ``--version``, with ``-p``/``-s``/``-d``/``--sport``/``--dport`` filters."""
from __future__ import annotations

from ..model.backend import Output
from ..render.ctline import conntrack_line
from .conntrack import IPS_ASSURED, IPS_SEEN_REPLY

TABLES = ("conntrack", "expect", "dying", "unconfirmed")

# `conntrack` with no arguments prints its help (captured from conntrack-tools 1.4.7)
HELP = "Command line interface for the connection tracking system. Version {ver}\nUsage: conntrack [commands] [options]\n\nCommands:\n  -L [table] [options]\t\tList conntrack or expectation table\n  -G [table] parameters\t\tGet conntrack or expectation\n  -D [table] parameters\t\tDelete conntrack or expectation\n  -I [table] parameters\t\tCreate a conntrack or expectation\n  -U [table] parameters\t\tUpdate a conntrack\n  -E [table] [options]\t\tShow events\n  -F [table]\t\t\tFlush table\n  -C [table]\t\t\tShow counter\n  -S\t\t\t\tShow statistics\n\nTables: conntrack, expect, dying, unconfirmed\n\nConntrack parameters and options:\n  -n, --src-nat ip\t\t\tsource NAT ip\n  -g, --dst-nat ip\t\t\tdestination NAT ip\n  -j, --any-nat ip\t\t\tsource or destination NAT ip\n  -m, --mark mark\t\t\tSet mark\n  -c, --secmark secmark\t\t\tSet selinux secmark\n  -e, --event-mask eventmask\t\tEvent mask, eg. NEW,DESTROY\n  -z, --zero \t\t\t\tZero counters while listing\n  -o, --output type[,...]\t\tOutput format, eg. xml\n  -l, --label label[,...]\t\tconntrack labels\n\nExpectation parameters and options:\n  --tuple-src ip\tSource address in expect tuple\n  --tuple-dst ip\tDestination address in expect tuple\n\nUpdating parameters and options:\n  --label-add label\tAdd label\n  --label-del label\tDelete label\n\nCommon parameters and options:\n  -s, --src, --orig-src ip\t\tSource address from original direction\n  -d, --dst, --orig-dst ip\t\tDestination address from original direction\n  -r, --reply-src ip\t\tSource addres from reply direction\n  -q, --reply-dst ip\t\tDestination address from reply direction\n  -p, --protonum proto\t\tLayer 4 Protocol, eg. 'tcp'\n  -f, --family proto\t\tLayer 3 Protocol, eg. 'ipv6'\n  -t, --timeout timeout\t\tSet timeout\n  -u, --status status\t\tSet status, eg. ASSURED\n  -w, --zone value\t\tSet conntrack zone\n  --orig-zone value\t\tSet zone for original direction\n  --reply-zone value\t\tSet zone for reply direction\n  -b, --buffer-size\t\tNetlink socket buffer size\n  --mask-src ip\t\t\tSource mask address\n  --mask-dst ip\t\t\tDestination mask address\n\n"



def format_entry(ct, timeout: int, secctx: str = "") -> str:
    o, r = ct.tuple
    return conntrack_line(6, timeout, ct.state_name, (o.src, o.dst, o.sport, o.dport),
                          (r.src, r.dst, r.sport, r.dport), ct.status, ct.mark, secctx)


def _err(ver: str, msg: str, status: int = 2) -> Output:
    return Output.of(stderr=f"conntrack v{ver} (conntrack-tools): {msg}\n"
                     "Try `conntrack -h' or 'conntrack --help' for more information.\n", status=status)


def conntrack_main(kernel, ns, argv) -> Output:
    ver = kernel.profile.tools["conntrack"]
    args = argv[1:]
    if not args or args[0] in ("-h", "--help"):
        return Output.of(stdout=HELP.replace("{ver}", ver))
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
    # the first ctnetlink request autoloads nf_conntrack_netlink (and with it nf_conntrack)
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
