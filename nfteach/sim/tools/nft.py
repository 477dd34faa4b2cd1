"""``nft``: the article's subset of the nftables command line, on the kernel's nf_tables
state (:mod:`nfteach.sim.kernel.nftables`). Parsing is :mod:`.nft_parser`, listing is
:mod:`.nft_format`."""
from __future__ import annotations

from typing import List, Optional

from ...model.backend import Output
from ..kernel.nftables import NftChain, NftError, NftState, NftTable, get_state
from . import nft_format as fmt
from .nft_format import prio_compat
from .nft_parser import HOOKS, STD_PRIOS, Parser


def main(kernel, ns, argv: List[str]) -> Output:
    """The lab's ``nft``."""
    return nft_main(ns, argv)


_SHORT = {"a": "handle", "c": "check", "e": "echo", "n": "numeric", "s": "stateless", "v": "version",
          "V": "version", "t": "terse", "j": "json", "f": "file", "h": "help", "N": "reversedns",
          "y": "numeric-priority", "p": "numeric-protocol", "T": "numeric-time", "S": "service",
          "u": "guid", "d": "debug", "I": "includepath", "o": "optimize"}
_MODELLED = {"handle", "version", "numeric", "stateless", "terse"}


def _err(line: str, e: NftError) -> Output:
    if e.span is None or e.msg.startswith("nfteach: "):
        return Output.of(stderr=(e.msg if e.msg.startswith("nfteach: ") else f"Error: {e.msg}") + "\n",
                         status=2 if e.msg.startswith("nfteach: ") else 1)
    s, t = e.span
    if "\n" in line:  # nft echoes only the line of the input that holds the error
        start = line.rfind("\n", 0, s) + 1
        end = line.find("\n", s)
        end = len(line) if end == -1 else end
        line, s, t = line[start:end], s - start, min(t, end) - start
    col = len(line[:s].encode())
    if t <= len(line):
        width = max(1, len(line[s:t].encode()))
    elif s == 0:  # a whole command whose location runs past the line end
        width = len(line.encode()) + (t - len(line))
    else:
        width = 1
    return Output.of(stderr=f"Error: {e.msg}\n{line}\n{' ' * col}{'^' * width}\n", status=1)


def nft_main(ns, argv: List[str]) -> Output:
    """``nft [options] COMMAND``: the article's subset, on ``ns.nft``."""
    args = list(argv[1:])
    # nft_options_check(): after the first non-option, a word starting with '-' outside
    # a '{' block is refused (the reason negative numbers need `nft --`)
    pos, seen_word, skip = 0, False, False
    for i, a in enumerate(args, start=1):
        pos += len(argv[i - 1]) + 1
        if a.startswith("{"):
            skip = True
        elif skip:
            continue
        elif a.startswith("-") and seen_word:
            return Output(((("err", "Error: syntax error, options must be specified before commands\n"
                             + "".join(x + " " for x in argv)),
                            ("out", "\n   ^" + "~~".rjust(pos - 2) + "\n"))), 1)
        elif not a.startswith("-"):
            seen_word = True
    opts = set()
    while args and args[0].startswith("-") and args[0] != "-":
        a = args.pop(0)
        if a == "--":
            break
        names = [a[2:]] if a.startswith("--") else [_SHORT.get(ch, "?" + ch) for ch in a[1:]]
        for name in names:
            if name.startswith("?"):
                return Output.of(stderr=f"nft: invalid option -- '{name[1:]}'\n", status=1)
            if name not in _SHORT.values():
                return Output.of(stderr=f"nft: unrecognized option '{a}'\n", status=1)
            if name not in _MODELLED:
                return Output.of(stderr=f"nfteach: nft option `{a}' is not modelled; supported: -a, -n, -s, -t, "
                                 "-v\n", status=2)
            opts.add(name)
    prof = ns.kernel.profile
    if "version" in opts:
        return Output.of(stdout=f"nftables v{prof.tools['nft']} ({prof.tools.get('nft_codename', '')})\n")
    if not args:
        return Output.of(stderr="nft: no command specified\n", status=1)
    line = " ".join(args)
    try:
        cmds = Parser(line).commands()
    except NftError as e:
        return _err(line, e)
    st = get_state(ns)
    st.begin()  # one batch: the commands of one line
    chunks: List[tuple] = []
    for cmd in cmds:
        try:
            res = _execute(st, cmd, opts)
        except NftError as e:
            err = _err(line, e)
            return Output.of(stdout="".join(t for s, t in chunks if s == "out"), stderr=err.stderr,
                             status=err.status)
        for stream, text in ([("out", res)] if isinstance(res, str) else res):
            if not text:
                continue
            if chunks and chunks[-1][0] == stream:
                chunks[-1] = (stream, chunks[-1][1] + text)
            else:
                chunks.append((stream, text))
    return Output(tuple(chunks), 0)


def _enoent(span) -> NftError:
    return NftError("Could not process rule: No such file or directory", span)


def _execute(st: NftState, cmd, opts) -> str:
    prof = st.ns.kernel.profile
    ipt = prof.tools.get("iptables", "1.8.7")
    handles = "handle" in opts
    nv = fmt._vt(prof.tools["nft"])
    fam = cmd.family
    if cmd.obj == "ruleset":
        if cmd.op == "flush":
            for t in [t for t in st.tables.values() if not fam or t.family == fam]:
                st.delete_table(t)
            return ""
        tables = [t for t in st.tables.values() if not fam or t.family == fam]
        return [c for t in tables for c in _table_listing(prof, t, fmt.table_text(t, handles, ipt, nft_version=nv))]
    if cmd.obj == "tables":
        return "".join(f"table {t.family} {t.name}\n" for t in st.tables.values())
    t = st.tables.get((fam, cmd.table))
    if cmd.obj == "table":
        if cmd.op in ("add", "create"):
            if t is not None and cmd.op == "create":
                raise NftError("Could not process rule: File exists", cmd.table_span)
            st.add_table(fam, cmd.table)
            return ""
        if t is None:
            if cmd.op == "list":
                raise NftError("No such file or directory", cmd.table_span)
            raise _enoent(cmd.table_span)
        if cmd.op == "delete":
            st.delete_table(t)
        elif cmd.op == "flush":
            st.flush_table(t)
        else:
            return _table_listing(prof, t, fmt.table_text(t, handles, ipt, nft_version=nv))
        return ""
    if t is None:
        if cmd.op == "list":
            raise NftError("No such file or directory", cmd.table_span)
        if cmd.obj == "chain" and cmd.op in ("add", "create"):
            raise _table_not_found(st, cmd)  # nft's own cache check, before the kernel
        raise _enoent(cmd.table_span)
    c = t.chains.get(cmd.chain)
    if cmd.obj == "chain" and cmd.op in ("add", "create"):
        return _add_chain(st, t, c, cmd)
    if c is None:
        raise (NftError("No such file or directory", cmd.chain_span) if cmd.op == "list"
               else _enoent(cmd.chain_span))
    if cmd.obj == "chain":
        if cmd.op == "list":
            return _table_listing(prof, t, fmt.table_text(t, handles, ipt, [c], nft_version=nv))
        if cmd.op == "flush":
            st.flush_chain(c)
        elif st.jumps_to(c):
            raise NftError("Could not process rule: Device or resource busy", cmd.chain_span)
        else:
            st.delete_chain(c)
        return ""
    if cmd.op == "delete":
        r = next((r for r in c.rules if r.handle == cmd.handle), None)
        if r is None:
            raise _enoent(cmd.handle_span)
        st.delete_rule(c, r)
        return ""
    for e in cmd.exprs:
        if e.kind == "verdict" and e.a in ("jump", "goto") and e.b not in t.chains:
            raise _enoent(cmd.jump_span)
    st.add_rule(c, cmd.exprs, 0 if cmd.op == "insert" else None)
    return ""


def _add_chain(st: NftState, t: NftTable, c: Optional[NftChain], cmd) -> str:
    b = cmd.base
    spec = ("", -1, 0)
    if b is not None:
        if "type" not in b:
            raise NftError("Could not process rule: Invalid argument", cmd.span)  # policy without hook
        if b["type"] not in ("filter", "nat", "route"):
            raise NftError("unknown chain type", b["type_span"])
        if b["hook"] not in HOOKS:
            raise NftError("unknown chain hook", b["hook_span"])
        hook = HOOKS[b["hook"]]
        prio = b["prio"]
        if b["prio_name"] is not None:
            name = b["prio_name"]
            if name not in STD_PRIOS or not prio_compat(name, hook, fmt._vt(st.ns.kernel.profile.tools["nft"])):
                raise NftError("invalid priority expression value in this context.", b["prio_span"])
            prio = (STD_PRIOS[name] + prio + 2**31) % 2**32 - 2**31
        if (b["type"] == "nat" and hook == 2) or (b["type"] == "route" and hook != 3):
            raise NftError("Could not process rule: Operation not supported", cmd.span)
        spec = (b["type"], hook, prio)
    if c is not None:
        if cmd.op == "create":
            raise NftError("Could not process rule: File exists", cmd.chain_span)
        if b is not None and (c.type, c.hooknum, c.priority) != spec:
            # newer nft compares the declaration itself before asking the kernel: 1.0.6
            # (bookworm) passes it on, 1.1.3 (trixie) refuses it (tests/golden/6.12/bad-input.txt)
            if tuple(int(x) for x in st.ns.kernel.profile.tools["nft"].split(".")) > (1, 0, 6):
                raise NftError(f"Chain \"{cmd.chain}\" already exists in table {t.family} '{t.name}' "
                               "with different declaration", (b["decl_start"], b["prio_span"][1]))
            # the kernel refuses to change a base chain's hook/priority; which errno it
            # answers with is kernel data (EEXIST before 6.x-something, EOPNOTSUPP on 6.18)
            if st.ns.kernel.profile.extra.get("nft", {}).get("chain_update_errno") == "EEXIST":
                raise NftError("Could not process rule: File exists", cmd.chain_span)
            raise NftError("Could not process rule: Operation not supported", cmd.span)
        if b is not None and "policy" in b:
            c.policy = b["policy"]
        return ""
    st.add_chain(t, cmd.chain, *spec, policy=(b or {}).get("policy", "accept"))
    return ""


def _string_distance(a: str, b: str) -> int:
    """nft's ``string_distance()`` (src/misspell.c), as written: it indexes both strings
    from 1 (so it compares a[i] with b[j] one place on, the terminating NUL at the end) and
    its table rows are ``len_b`` wide in a ``(len_a+1)*(len_b+1)`` array."""
    la, lb = len(a), len(b)
    ca, cb = a.encode() + b"\0", b.encode() + b"\0"
    d = [0] * ((la + 1) * (lb + 1))
    for i in range(la + 1):
        d[i * lb] = i
    for j in range(lb + 1):
        d[j] = j
    for i in range(1, la + 1):
        for j in range(1, lb + 1):
            sub = 0 if ca[i] == cb[j] else 1
            v = min(d[(i - 1) * lb + j] + 1, d[i * lb + j - 1] + 1, d[(i - 1) * lb + j - 1] + sub)
            if i > 1 and j > 1 and ca[i] == cb[j - 1] and ca[i - 1] == cb[j]:
                v = min(v, d[(i - 2) * lb + j - 2] + sub)
            d[i * lb + j] = v
    return d[la * lb + lb]


def _misspelled(candidates, name: str):
    """``string_misspell_update()`` over ``candidates`` (name, obj): the closest one within
    nft's threshold, the first of equals."""
    best, best_d = None, None
    for cand, obj in candidates:
        hi, lo = max(len(cand), len(name)), min(len(cand), len(name))
        if hi <= 1:
            continue
        threshold = max(-(-hi // 3), 1) if hi - lo <= 1 else -(-(hi + 2) // 3)
        d = _string_distance(cand, name)
        if d <= threshold and (best_d is None or d < best_d):
            best, best_d = obj, d
    return best


def _table_not_found(st: NftState, cmd) -> NftError:
    """``table_not_found()``: ENOENT, with a hint of a table of a similar name
    (``table_lookup_fuzzy``, any family, in the order nft's cache lists them)."""
    t = _misspelled(((x.name, x) for x in st.tables.values()), cmd.table)
    if t is None:
        return NftError("No such file or directory", cmd.table_span)
    # nft 1.0.6 quotes with U+2018/U+2019, 1.1.3 with ASCII (vm 5.10, 6.12)
    q = ("'", "'") if fmt._vt(st.ns.kernel.profile.tools["nft"]) > (1, 0, 6) else ("\u2018", "\u2019")
    return NftError(f"No such file or directory; did you mean table {q[0]}{t.name}{q[1]} in family {t.family}?",
                    cmd.table_span)


def _table_listing(prof, t, text: str) -> list:
    """A table's listing, after the warning Debian 12's nft 1.0.6 (+deb12u2) and later print
    on stderr about a table holding iptables-nft compat expressions (xt matches/targets):
    ``table_print`` writes it just before the table (nft 0.9.8 does not have it)."""
    warn = ""
    if tuple(int(x) for x in prof.tools["nft"].split(".")) >= (1, 0, 6) and \
            any(r.xt is not None and r.xt.compat for c in t.chains.values() for r in c.rules):
        warn = f"# Warning: table {t.family} {t.name} is managed by iptables-nft, do not touch!\n"
    return [("err", warn), ("out", text)]
