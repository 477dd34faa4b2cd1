"""``lsmod``, ``modprobe``, ``rmmod``, ``modinfo`` for the netfilter modules.

On a profile whose netfilter is built in (``modules = false``, this machine's 6.18) the
tools fail as they do there, and ``modprobe nf_conntrack enable_hooks=1`` / ``rmmod
nf_conntrack`` are emulated with a conntrack user per namespace (docs/lab-contract.md) —
exactly what the ``live`` backend does on the same kernel.
"""
from __future__ import annotations

from ...model import notes
from ...model.backend import Output
from ..kernel.kernfs import readdir_order
from ..kernel.modules import ModuleError

_BUILTIN_LSMOD = ("libkmod: ERROR ../libkmod/libkmod-module.c:1725 kmod_module_new_from_loaded: "
                  "could not open /proc/modules: No such file or directory\n"
                  "Error: could not get list of modules: No such file or directory\n")

def _is_ct_module(name: str) -> bool:
    return name.replace("-", "_") in ("nf_conntrack", "nf_conntrack_netlink")


def lsmod(kernel, ns, argv) -> Output:
    if not kernel.profile.modules:
        return Output.of(stderr=_BUILTIN_LSMOD, status=1)
    return Output.of(stdout=kernel.modules.lsmod())


def modinfo(kernel, ns, argv) -> Output:
    names = [a for a in argv[1:] if not a.startswith("-")]
    if not names:
        return Output.of(stderr="modinfo: ERROR: missing module or filename.\n", status=1)
    out, err, status = [], [], 0
    for name in names:
        key = name.replace("-", "_")
        if not kernel.profile.modules or not kernel.modules.known(key):
            err.append(f"modinfo: ERROR: Module {name} not found.\n")
            status = 1
            continue
        spec = kernel.modules.table[key]
        rel = kernel.profile.uname_r
        path = spec.get("path", f"kernel/net/netfilter/{key}.ko")
        out.append(f"{'filename:':<16}/lib/modules/{rel}/{path}\n")
        if spec.get("modinfo"):  # read from the kernel's guest by `nfteach vm derive`
            out += [f"{field + ':':<16}{value}\n" for field, value in spec["modinfo"]]
            continue
        out.append(f"{'license:':<16}GPL\n")
        deps = ",".join(spec.get("deps", []))
        out.append(f"{'depends:':<16}{deps}\n")
        out.append(f"{'retpoline:':<16}Y\n{'intree:':<16}Y\n{'name:':<16}{key}\n")
        out.append(f"{'vermagic:':<16}{rel} SMP mod_unload modversions \n")
        for parm in spec.get("parms", []):
            out.append(f"{'parm:':<16}{parm}\n")
    chunks = [("out", "".join(out))] if out else []
    chunks += [("err", "".join(err))] if err else []
    return Output(tuple(chunks), status)


def _emulate(kernel, ns, enable: bool) -> Output:
    """Built-in conntrack: a conntrack user in every lab namespace (or its removal)."""
    from .nft import nft_main  # only built-in kernels need nft here

    note = ""
    if not getattr(kernel, "_builtin_note_shown", False):
        kernel._builtin_note_shown = True
        note = notes.BUILTIN_MODPROBE_NOTE + "\n"
    cmds = notes.BUILTIN_ENABLE_HOOKS_NFT if enable else notes.BUILTIN_DISABLE_HOOKS_NFT
    for target in kernel.namespaces.values():
        has = target.nft is not None and ("inet", notes.BUILTIN_CT_TABLE) in getattr(target.nft, "tables", {})
        if enable == has:
            continue
        for argv in cmds:
            nft_main(target, ["nft", *argv])
    return Output.of(stderr=note)


def modprobe(kernel, ns, argv) -> Output:
    args = argv[1:]
    remove = False
    while args and args[0].startswith("-"):
        if args[0] in ("-r", "--remove"):
            remove = True
        elif args[0] not in ("-v", "-q", "--verbose", "--quiet"):
            return Output.of(stderr=f"nfteach: modprobe: option {args[0]!r} is not modelled (supported: -r, -v, -q)\n", status=2)
        args = args[1:]
    if not args:
        return Output.of(stderr="modprobe: ERROR: missing parameters. See -h.\n", status=1)
    if remove:
        return _rmmod(kernel, ns, ["rmmod", *args], recursive=True)
    name, params = args[0], {}
    for p in args[1:]:
        k, eq, v = p.partition("=")
        params[k] = v if eq else "1"
    if not kernel.profile.modules:
        if _is_ct_module(name):
            on = params.get("enable_hooks", "0").lower() in ("1", "y", "yes", "true", "on")
            return _emulate(kernel, ns, True) if on else Output.of()
        return Output.of(stderr=f"modprobe: FATAL: Module {name} not found in directory /lib/modules/{kernel.profile.uname_r}\n", status=1)
    if not kernel.modules.known(name):
        return Output.of(stderr=f"modprobe: FATAL: Module {name} not found in directory /lib/modules/{kernel.profile.uname_r}\n", status=1)
    kernel.modules.load(name, params)
    return Output.of()


def rmmod(kernel, ns, argv) -> Output:
    return _rmmod(kernel, ns, argv)


def _rmmod(kernel, ns, argv, recursive: bool = False) -> Output:
    names = [a for a in argv[1:] if not a.startswith("-")]
    prog = "modprobe" if recursive else "rmmod"
    if not names:
        return Output.of(stderr=f"{prog}: ERROR: missing module name.\n", status=1)
    if not kernel.profile.modules:
        if all(_is_ct_module(n) for n in names):
            return _emulate(kernel, ns, False)
        err = "".join(f"rmmod: ERROR: Module {n} is not currently loaded\n" for n in names if not _is_ct_module(n))
        return Output.of(stderr=err, status=1)
    err, status = [], 0
    for n in names:
        key = n.replace("-", "_")
        try:
            kernel.modules.unload(key)
        except ModuleError as e:
            status = 1
            if str(e) == "not loaded":
                err.append(f"{prog}: ERROR: Module {n} is not currently loaded\n")
            else:
                m = kernel.modules.loaded[key]
                # kmod reads /sys/module/NAME/holders/ as lsmod does: kernfs readdir order
                holders = " ".join(readdir_order(m.holders))
                err.append(f"{prog}: ERROR: Module {n} is in use" + (f" by: {holders}" if holders else "") + "\n")
    return Output.of(stderr="".join(err), status=status)
