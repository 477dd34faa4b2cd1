"""``nfteach vm derive --kernel K``: the facts a kernel build can tell, read from it.

Writes ``nfteach/model/profiles/K.derived.toml``; ``load_profile`` lays it over the
hand-written ``K.toml`` (a derived value wins), so the two files say apart what was read
from the kernel and what was modelled by hand. ``tests/vm/test_derive.py`` derives again
and fails when the committed file and a fresh derivation disagree.

What is derived, and from where (all from the cached Debian packages of
``nfteach vm fetch``, ``~/.cache/nfteach/kernels/K``, unless it says *guest*):

* ``uname_r``: the package's kernel release (``linux-image-<release>``).
* ``[kmod.NAME]`` for every module the simulator models (``nfteach.sim.kernel.modules``):
  ``path`` under ``/lib/modules/<release>/`` and ``deps``, the direct dependencies
  (``modinfo -F depends`` of the ``.ko``) in the order ``modules.dep`` lists them;
  ``load``: the whole ``modules.dep`` line (every module it needs, depmod's order), which
  ``modprobe`` inserts from its end before the module;
  ``size``: what ``lsmod`` prints on the booted guest after ``modprobe`` (*guest*);
  ``modinfo``: the fields ``modinfo NAME`` prints there, in order (*guest*).
* ``[trace.modules]``: module of every modelled function that exists out of line
  (``nm`` of the ``-dbg`` ``.ko`` files; vmlinux functions have none).
* ``[trace.symbols]``: a modelled function the compiler only emitted as a clone
  (``init_conntrack.constprop.0``, ``.isra.0``, ``.part.0``) -> that symbol.
* ``[trace.kstack.offsets]``: ``"caller>callee"`` -> the return-address offset after the
  call, for every pair of modelled functions where the caller calls the callee directly
  from exactly one place (``objdump -dr`` of the caller). Indirect calls (hook functions,
  ``destroy`` callbacks) and pairs with several call sites stay hand-written; the test
  checks those are among the call sites when there are any.
* ``[tools]``: ``conntrack``, ``iptables``, ``nft`` versions and nft's codename, and which
  variant ``iptables`` is (``iptables_default``), from the tools' ``--version`` on the guest
  (*guest*; the guest's Debian userland).
* ``[trace.inlined]``: modelled function -> the modelled functions DWARF shows it inlined
  into (``readelf --debug-dump=info`` of the modules holding modelled functions; vmlinux's
  DWARF is not read).
* ``[trace.hidden]``: the model functions no trace shows where the model calls them, each
  with why (``why``): no out-of-line copy (``nm``), inlined into the caller the model calls it
  from and not called from there (DWARF, ``addr2line -i`` for vmlinux callers, ``objdump``),
  or not in ``available_filter_functions`` (*guest*: notrace); ``nfteach.fidelity.hidden``.
* ``[klog]``: printk formats of the kernel log lines the simulator prints (``KLOG``), from
  the module's ``.rodata`` (``nf_conntrack: table full, dropping packet``).
* ``[layout]``: struct layouts, enums, typedefs, types of globals and symbols for drgn,
  from the DWARF of the ``-dbg`` vmlinux and ``.ko`` (``nfteach.introspect.layouts``).
* ``[derived]``: which tool wrote the file, from which packages, which fields.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..introspect import layout_files
from ..vm import fetch
from .elf import CLONE, direct_calls

PROFILES = Path(__file__).resolve().parent.parent / "model" / "profiles"
#: guest commands for tool versions, and how to read them
TOOL_VERSIONS = (
    ("sudo conntrack --version", re.compile(r"conntrack v(?P<conntrack>[\d.]+)")),
    ("sudo iptables --version", re.compile(r"iptables v(?P<iptables>[\d.]+) \((?P<iptables_default>[\w_]+)\)")),
    ("sudo nft --version", re.compile(r"nftables v(?P<nft>[\d.]+) \((?P<nft_codename>[^)]*)\)")),
)


#: where the guest mounts tracefs
TRACEFS = "/sys/kernel/tracing"


def derived_path(kernel: str) -> Path:
    return PROFILES / f"{kernel}.derived.toml"


# -- what the simulator models (the questions; the kernel gives the answers) ----------------
def modelled_modules() -> List[str]:
    from ..sim.kernel.modules import DEFAULT_MODULES

    return list(DEFAULT_MODULES)


def modelled_functions(prof) -> List[str]:
    """Kernel functions the model names: hook functions, roles, traced functions."""
    from ..sim.trace.kdata import COSTS_NS, SIGNATURES
    from ..sim.trace.state import MODEL_FUNCTIONS

    t = prof.extra.get("trace", {})
    names = set(prof.hookfn.values()) | set(prof.functions.values()) | {x["fn"] for x in prof.lsm}
    names |= set(MODEL_FUNCTIONS) | set(COSTS_NS) | set(SIGNATURES) | set(t.get("symbols", {}).values())
    names |= set(t.get("hidden", {}).get("functions", [])) | set(t.get("absent", []))
    for key in t.get("kstack", {}).get("offsets", {}):
        names |= set(key.split(">"))
    return sorted(n for n in names if n)


# -- package files --------------------------------------------------------------------
def _nm(path: Path) -> List[Tuple[int, int, str, str]]:
    """(address, size, type, name) of the defined symbols of one ELF file."""
    out = subprocess.run(["nm", "-S", "--defined-only", str(path)], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4:
            rows.append((int(p[0], 16), int(p[1], 16), p[2], p[3]))
    return rows


def module_facts(moddir: Path, names: List[str]) -> Dict[str, dict]:
    """``[kmod.NAME]`` path and direct deps of each module the package has."""
    order: Dict[str, List[str]] = {}
    paths: Dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, deps = line.partition(":")
        name = _modname(mod)
        paths[name] = mod
        order[name] = [_modname(d) for d in deps.split()]
    out = {}
    for name in names:
        if name not in paths:
            continue
        direct = subprocess.run(["modinfo", "-F", "depends", str(moddir / paths[name])], capture_output=True,
                                text=True, check=True).stdout.strip()
        direct_set = {d for d in direct.split(",") if d}
        # path as modules.dep has it (a compressed module keeps its .ko.xz, as modinfo shows it)
        out[name] = {"path": paths[name], "deps": [d for d in order[name] if d in direct_set],
                     "load": order[name]}
    return out


def _modname(path: str) -> str:
    return re.sub(r"\.ko(\.(xz|zst|gz))?$", "", os.path.basename(path)).replace("-", "_")


def function_facts(debug: Path, functions: List[str]) -> Tuple[Dict[str, str], Dict[str, str], Dict[str, tuple]]:
    """(symbol -> module, model name -> clone symbol, symbol -> (file, address, size))."""
    want = set(functions)
    where: Dict[str, tuple] = {}
    files = [debug / "vmlinux"] + sorted(debug.glob("*.ko"))
    for f in files:
        mod = f.name.removesuffix(".ko")
        for addr, size, typ, name in _nm(f):
            if typ not in "tT":
                continue
            m = CLONE.match(name)
            base = m["base"] if m else name
            if base in want and name not in where:
                where[name] = (f, mod, addr, size)
    modules = {s: w[1] for s, w in sorted(where.items()) if w[1] != "vmlinux"}
    clones = {}
    for fn in sorted(want):
        if fn in where:
            continue
        cl = sorted(s for s in where if CLONE.match(s) and CLONE.match(s)["base"] == fn)
        if cl:
            clones[fn] = cl[0]
    return modules, clones, {s: (w[0], w[2], w[3]) for s, w in where.items()}


def call_sites(file: Path, addr: int, size: int) -> Dict[str, List[int]]:
    """callee -> return-address offsets of the direct calls in the function at ``addr``."""
    sites: Dict[str, List[int]] = {}
    for _at, nxt, callee in direct_calls(file, addr, size):
        sites.setdefault(callee, []).append(nxt - addr)
    return sites


def kstack_facts(where: Dict[str, tuple]) -> Tuple[Dict[str, int], Dict[str, List[int]]]:
    """(``"caller>callee"`` -> return offset where the caller calls the callee from one place
    only, ``"caller>callee"`` -> every call site), over the modelled functions' symbols."""
    unique, sites = {}, {}
    for caller, (f, addr, size) in sorted(where.items()):
        for callee, offs in call_sites(f, addr, size).items():
            if callee in where and callee != caller:
                sites[f"{caller}>{callee}"] = sorted(set(offs))
                if len(set(offs)) == 1:
                    unique[f"{caller}>{callee}"] = offs[0]
    return unique, sites


_DIE = re.compile(r"^\s*<(?P<depth>\d+)><(?P<off>[0-9a-f]+)>: Abbrev Number: \d+ \((?P<tag>DW_TAG_\w+)\)")
_ATTR = re.compile(r"^\s*<[0-9a-f]+>\s+(?P<at>DW_AT_(?:name|abstract_origin|specification))\s*:\s*(?P<val>.*)$")


def inlined_in(files: List[Path], functions: List[str]) -> Dict[str, List[str]]:
    """Modelled function -> the modelled functions it is inlined into (DWARF
    ``DW_TAG_inlined_subroutine`` under each out-of-line ``DW_TAG_subprogram``), read with
    ``readelf --debug-dump=info`` from ``files`` (the -dbg modules that hold the functions)."""
    want = set(functions)
    out: Dict[str, set] = {}
    for f in files:
        text = subprocess.run(["readelf", "--debug-dump=info", str(f)], capture_output=True, text=True).stdout
        dies: Dict[int, list] = {}  # offset -> [tag, name, ref]
        inl: List[Tuple[int, int]] = []  # (inlined DIE, enclosing subprogram DIE)
        stack: List[Tuple[int, str, int]] = []  # (depth, tag, offset)
        cur = None
        for line in text.splitlines():
            m = _DIE.match(line)
            if m:
                depth, off, tag = int(m["depth"]), int(m["off"], 16), m["tag"]
                while stack and stack[-1][0] >= depth:
                    stack.pop()
                cur = dies[off] = [tag, None, None]
                if tag == "DW_TAG_inlined_subroutine":
                    sub = next((o for _d, t, o in reversed(stack) if t == "DW_TAG_subprogram"), None)
                    if sub is not None:
                        inl.append((off, sub))
                stack.append((depth, tag, off))
                continue
            a = _ATTR.match(line)
            if a and cur is not None:
                if a["at"] == "DW_AT_name":
                    cur[1] = a["val"].rsplit(": ", 1)[-1].strip()
                else:
                    r = re.search(r"<0x([0-9a-f]+)>", a["val"])
                    cur[2] = int(r.group(1), 16) if r else None

        for i, sub in inl:
            callee, caller = _die_name(dies, i), _die_name(dies, sub)
            if callee in want and caller in want and callee != caller:
                out.setdefault(callee, set()).add(caller)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _die_name(dies: Dict[int, list], off: Optional[int], hops: int = 0) -> Optional[str]:
    """A DIE's name, following abstract_origin/specification."""
    d = dies.get(off) if off is not None else None
    if d is None or hops > 4:
        return None
    return d[1] or _die_name(dies, d[2], hops + 1)


#: kernel log messages the simulator prints: name -> (module, start of the printk format)
KLOG = {"table_full": ("nf_conntrack", b"nf_conntrack: table full")}


def klog_facts(debug: Path) -> Dict[str, List[str]]:
    """``[klog]``: every printk format of the module that starts like the message (the
    module's .rodata; KERN_ level prefix and newline dropped)."""
    out = {}
    for name, (mod, start) in KLOG.items():
        data = (debug / f"{mod}.ko").read_bytes()
        found = re.findall(rb"(?:\x01\d)?(" + re.escape(start) + rb"[^\x00\n]*)", data)
        out[name] = sorted({f.decode() for f in found})
    return out


# -- the guest ------------------------------------------------------------------------
def guest_facts(kernel: str, modules: List[str], symbols: Optional[List[str]] = None,
                symbol_modules: Optional[List[str]] = None) -> dict:
    """lsmod sizes of ``modules``, tool versions, and which of ``symbols`` function_graph can
    trace (in available_filter_functions once ``symbol_modules`` are loaded too), from a booted guest."""
    from ..lab import Lab
    from ..vm.backend import VmBackend

    sizes, tools = {}, {}
    with Lab(backend=VmBackend(kernel=kernel)) as lab:
        for cmd, rx in TOOL_VERSIONS:
            m = rx.search(lab.run(cmd).output)
            if m:
                tools.update(m.groupdict())
        # `iptables` is iptables-nft or -legacy (Debian's alternatives): "(nf_tables)" / "(legacy)"
        tools["iptables_default"] = {"nf_tables": "nft"}.get(tools.get("iptables_default"), tools.get("iptables_default"))
        for name in modules:
            lab.run(f"sudo modprobe {name}")
        for line in lab.run("lsmod").output.splitlines()[1:]:
            p = line.split()
            if len(p) >= 2 and p[0] in modules and p[1].isdigit():
                sizes[p[0]] = int(p[1])
        info = {name: parse_modinfo(lab.run(f"modinfo {name}").output) for name in modules}
        traceable = set()
        if symbols:  # the file has ~30000 lines: grep it in the guest
            for name in symbol_modules or ():
                lab.run(f"sudo modprobe {name}")
            argv = ["grep", "-w"] + [a for s in symbols for a in ("-e", s)] + [f"{TRACEFS}/available_filter_functions"]
            found = lab.backend.exec_raw(argv).stdout.splitlines()
            traceable = {line.split()[0] for line in found if line.strip()} & set(symbols)
    return {"sizes": sizes, "tools": tools, "modinfo": info, "traceable": traceable}


def parse_modinfo(text: str) -> List[List[str]]:
    """``modinfo`` output as [field, value] rows in its order, without ``filename`` (the
    simulator writes that from the path); a continuation line (tab) stays in its value."""
    rows: List[List[str]] = []
    for line in text.splitlines():
        if line.startswith("\t") and rows:
            rows[-1][1] += "\n" + line
            continue
        field, sep, value = line.partition(":")
        if sep and field and " " not in field:
            rows.append([field, value.lstrip(" ")])
    return [r for r in rows if r[0] != "filename"]


# -- all of it ------------------------------------------------------------------------
def derive(kernel: str, guest: bool = True, progress=print) -> str:
    """The text of ``K.derived.toml`` for a fetched kernel."""
    from ..introspect import layouts
    from ..model.profile import load_profile
    from .hidden import hidden_facts, site_symbols

    man = fetch.read_manifest(kernel)
    if not man or "release" not in man:
        raise SystemExit(f"nfteach: kernel {kernel} is not fetched; run `nfteach vm fetch --kernel {kernel}`")
    kdir = fetch.kernel_dir(kernel)
    release = man["release"]
    debug = kdir / "debug"
    prof = load_profile(kernel, derived=False)
    t0 = time.monotonic()
    kmod = module_facts(kdir / "modules" / "lib" / "modules" / release, modelled_modules())
    progress(f"derive {kernel}: modules.dep + modinfo ({time.monotonic() - t0:.1f} s)")
    funcs = modelled_functions(prof)
    modules, clones, where = function_facts(debug, funcs)
    progress(f"derive {kernel}: nm of {len(list(debug.glob('*.ko'))) + 1} debug files ({time.monotonic() - t0:.1f} s)")
    offsets, _sites = kstack_facts(where)
    progress(f"derive {kernel}: call sites ({time.monotonic() - t0:.1f} s)")
    klog = klog_facts(debug)
    inlined = inlined_in(sorted({debug / f"{m}.ko" for m in modules.values()}), funcs)
    progress(f"derive {kernel}: DWARF inlining ({time.monotonic() - t0:.1f} s)")
    lay = layouts.from_dwarf([str(debug / "vmlinux"), str(debug / "nf_conntrack.ko")])
    lay["symbols"] = layouts.symbols_from_debug(str(debug), layouts.hook_function_names(prof))
    progress(f"derive {kernel}: DWARF layouts ({time.monotonic() - t0:.1f} s)")
    tools: Dict[str, str] = {}
    traceable: Optional[set] = None
    fields = ["uname_r", "kmod.*.path", "kmod.*.deps", "kmod.*.load", "trace.modules", "trace.symbols (clones)",
              "trace.kstack.offsets (unique call sites)",
              "trace.inlined", "klog", "layout"]
    if guest:
        g = guest_facts(kernel, list(kmod), sorted(where), sorted(set(modules.values())))
        traceable = g["traceable"]
        for name, size in g["sizes"].items():
            kmod[name]["size"] = size
        for name, rows in g["modinfo"].items():
            if rows:
                kmod[name]["modinfo"] = rows
        tools = g["tools"]
        fields[1:1] = ["kmod.*.size (guest lsmod)", "kmod.*.modinfo (guest modinfo)"]
        fields.append("tools (guest --version)")
        progress(f"derive {kernel}: guest ({time.monotonic() - t0:.1f} s)")
    hidden = hidden_facts(kernel, prof, clones, where, inlined, traceable)
    fields.append("trace.hidden" + (" (guest available_filter_functions)" if guest else ""))
    at = site_symbols(kernel, prof, clones, where)
    fields.append("trace.symbols_at (objdump: the clone a caller calls)")
    progress(f"derive {kernel}: hidden functions ({time.monotonic() - t0:.1f} s)")
    pkgs = sorted(man.get("packages", {}))
    out = ["# Generated by `nfteach vm derive --kernel " + kernel + "`: do not edit by hand.",
           "# Facts read from the kernel build (see nfteach/fidelity/derive.py); laid over " + kernel + ".toml.",
           f"uname_r = {layout_files._q(release)}", "",
           "[derived]", 'tool = "nfteach vm derive"',
           "packages = " + layout_files._val(pkgs),
           "fields = " + layout_files._val(fields), ""]
    if tools:
        out += ["[tools]"] + [f"{k} = {layout_files._q(v)}" for k, v in sorted(tools.items())] + [""]
    for name, spec in kmod.items():  # JSON strings and arrays are TOML (escapes: \n, \t)
        out += [f"[kmod.{name}]"] + [f"{k} = {json.dumps(v)}" for k, v in sorted(spec.items())] + [""]
    out += ["[trace.modules]"] + [f"{layout_files._q(k)} = {layout_files._q(v)}" for k, v in modules.items()] + [""]
    out += ["[trace.symbols]"] + [f"{layout_files._q(k)} = {layout_files._q(v)}" for k, v in clones.items()] + [""]
    out += ["[trace.symbols_at]  # \"caller>callee\" = the clone of callee that caller calls"]
    out += [f"{layout_files._q(k)} = {layout_files._q(v)}" for k, v in sorted(at.items())] + [""]
    out += ["[klog]  # printk formats (.rodata of the module)"]
    out += [f"{k} = {json.dumps(v)}" for k, v in klog.items()] + [""]
    out += ["[trace.inlined]  # function = [modelled functions it is inlined into (DWARF of the modules)]"]
    out += [f"{layout_files._q(k)} = {layout_files._val(v)}" for k, v in inlined.items()] + [""]
    out += ["[trace.hidden]  # model functions no trace shows where the model calls them (\"caller>callee\": at that call)",
            "functions = " + layout_files._val(sorted(hidden)), "",
            "[trace.hidden.why]"] + [f"{layout_files._q(k)} = {layout_files._q(v)}" for k, v in hidden.items()] + [""]
    out += ["[trace.kstack.offsets]"] + [f"{layout_files._q(k)} = {v}" for k, v in sorted(offsets.items())]
    debs = " ".join(p for p in pkgs if "-dbg_" in p)
    text = "\n".join(out) + "\n" + layouts.to_toml(lay, f"DWARF of vmlinux and nf_conntrack.ko of {debs}, read with drgn; "
                                                        "symbols: nm of the same debug files")
    return text.replace("generated by `python -m nfteach.introspect.layouts`", "generated by `nfteach vm derive`")


def run(kernel: str, guest: bool = True, out: Optional[Path] = None) -> int:
    t = time.monotonic()

    def say(msg):
        sys.stderr.write(f"nfteach: {msg}\n")

    text = derive(kernel, guest=guest, progress=say)
    path = out or derived_path(kernel)
    path.write_text(text)
    say(f"derive {kernel}: wrote {path} ({time.monotonic() - t:.0f} s)")
    return 0
