"""The synthesized drgn program against the real kernels (issue 5, vm tier).

- every member of every synthesized struct sits at the offset, with the size, that the
  DWARF of the profile's -dbg ``vmlinux`` (+ ``nf_conntrack.ko``) in the vm cache gives;
  6.18 against this machine's BTF when it runs that kernel;
- on a booted guest: the conntrack walker lists what ``conntrack -L`` lists.
"""
import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm
drgn = pytest.importorskip("drgn", reason="drgn is not installed (pip install drgn)")

from nfteach import Lab  # noqa: E402
from nfteach.introspect import layouts  # noqa: E402
from nfteach.introspect.simprog import sim_program  # noqa: E402
from nfteach.sim.kernel.kernel import Kernel  # noqa: E402

CACHE = Path(os.environ.get("NFTEACH_CACHE", Path.home() / ".cache" / "nfteach")) / "kernels"


def _real_dwarf(kernel):
    debug = CACHE / kernel / "debug"
    vmlinux = debug / "vmlinux"
    if not vmlinux.exists():
        pytest.skip(f"no {vmlinux}: run `nfteach vm fetch {kernel}` (with the -dbg package)")
    prog = drgn.Program(drgn.host_platform)
    for f in (vmlinux, debug / "nf_conntrack.ko"):
        if f.exists():
            prog.extra_module(str(f), create=True).try_file(str(f), force=True)
    return lambda name: layouts.from_drgn(prog.type(name))


def _strip(t):
    while t.kind == drgn.TypeKind.TYPEDEF:
        t = t.type
    return t


def compare(sim_t, real_lookup, real_t, path, checked):
    """Each member of the synthesized type ``sim_t`` against the real type (a layouts.T)."""
    sim_t = _strip(sim_t)
    if sim_t.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
        return
    while real_t.kind == layouts.TYPEDEF:
        real_t = real_t.type.get()
    if real_t.members is None and real_t.name:
        real_t = real_lookup(f"{real_t.kind} {real_t.name}")
    assert sim_t.size == real_t.size, f"sizeof({path}): sim {sim_t.size}, real {real_t.size}"
    real_members = {m[0]: m for m in real_t.members}
    for m in sim_t.members:
        assert m.name in real_members, f"{path}.{m.name}: not in the real type"
        _name, bit_off, bits, lazy = real_members[m.name]
        assert m.bit_offset == bit_off, f"offsetof({path}.{m.name}): sim {m.bit_offset // 8}, real {bit_off // 8}"
        assert (m.bit_field_size or 0) == bits, f"{path}.{m.name}: bit field size"
        rt = lazy.get()
        real_size = _size(rt, real_lookup)
        if real_size is not None:
            assert drgn.sizeof(m.type) == real_size, f"sizeof({path}.{m.name}): sim {drgn.sizeof(m.type)}, real {real_size}"
        checked.append(f"{path}.{m.name}")
        st = _strip(m.type)
        if st.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            compare(st, real_lookup, rt, f"{path}.{m.name}", checked)
        elif st.kind == drgn.TypeKind.ARRAY and _strip(st.type).kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            while rt.kind == layouts.TYPEDEF:
                rt = rt.type.get()
            compare(_strip(st.type), real_lookup, rt.type.get(), f"{path}.{m.name}[]", checked)


def _size(t, lookup):
    while t.kind == layouts.TYPEDEF:
        t = t.type.get()
    if t.kind == layouts.ARRAY:
        n = _size(t.type.get(), lookup)
        return None if t.length is None or n is None else n * t.length
    if t.kind == layouts.POINTER:
        return 8
    if t.kind in (layouts.STRUCT, layouts.UNION) and t.size is None and t.name:
        return lookup(f"{t.kind} {t.name}").size
    return t.size


def check_profile(kernel, lookup):
    prog = sim_program(Kernel(kernel))
    lay = Kernel(kernel).profile.extra["layout"]
    checked = []
    for name in lay["types"]:
        if "<" in name:
            continue  # anonymous: checked through their parents
        compare(prog.type(name), lookup, lookup(name), name, checked)
    for name in lay["enums"]:
        real = lookup(name)
        assert [(e.name, e.value) for e in prog.type(name).enumerators] == list(real.enumerators)
    return checked


@pytest.mark.parametrize("kernel", ["5.10", "6.1", "6.12"])
def test_layouts_equal_real_dwarf(kernel):
    checked = check_profile(kernel, _real_dwarf(kernel))
    for must in ("struct nf_hook_ops.hook", "struct nf_hook_ops.priority", "struct netns_nf.hooks_ipv4",
                 "struct net.nf", "struct nf_conn.tuplehash", "struct nf_conn.status"):
        assert must in checked


def test_layouts_6_18_equal_this_kernels_btf():
    btf = Path("/sys/kernel/btf/vmlinux")
    if not os.uname().release.startswith("6.18") or not btf.exists():
        pytest.skip("the 6.18 profile is this CI machine's kernel; here the kernel is "
                    f"{os.uname().release} (or it has no /sys/kernel/btf/vmlinux)")
    b = layouts.Btf(btf.read_bytes())
    check_profile("6.18", b.type)


def _vm_ready(kernel):
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed")
    if not (CACHE / kernel / "debug" / "vmlinux").exists():
        pytest.skip(f"kernel {kernel} with debug info is not in the vm cache")


@pytest.mark.parametrize("kernel", ["5.10", "6.1", "6.12"])
def test_conntrack_walker_on_real_kernel(kernel, conntrack_until):
    _vm_ready(kernel)
    from nfteach.introspect import conntrack as ct_walk
    from nfteach.introspect import hooks, program

    with Lab("vm", kernel=kernel) as lab:
        for line in ("sudo modprobe nf_conntrack enable_hooks=1",
                     "sudo nft add table ip t",
                     "sudo nft add chain ip t c { type filter hook input priority 2147483647 \\; }",
                     "sudo nft add rule ip t c tcp dport 2570 drop",
                     "@host nc -w 2 -z 192.168.122.204 2570",
                     "@host nc -w 1 -z 192.168.122.204 22"):
            lab.run(line)
        # the ssh close settled (TIME_WAIT) first: a state that moves between -L and the walk differs
        listed = sorted(ln for ln in conntrack_until(lab, "TIME_WAIT").splitlines() if ln.startswith("tcp"))
        prog = program(lab)
        walked = sorted(ct_walk.format_conntrack(ct_walk.nf_conn_entry(prog, c))
                        for c in ct_walk.nf_conntrack_hash_for_each(prog, prog["init_net"].address_of_()))
        no_timeout = lambda ln: re.sub(r"^(\S+\s+\d+) \d+ ", r"\1 T ", ln)  # noqa: E731 - it ticks
        assert listed and [no_timeout(x) for x in walked] == [no_timeout(x) for x in listed]
        names = [n for _p, n in hooks.netns_nf_hooks(prog)["ipv4"]["LOCAL_IN"]]
        confirm = "nf_confirm" if kernel == "6.12" else "ipv4_confirm"  # 6.12 registers nf_confirm itself
        assert names[-2:] == ["nft_do_chain_ipv4", confirm]  # registered later, runs first
