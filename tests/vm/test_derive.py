"""``nfteach vm derive``: the committed ``profiles/K.derived.toml`` is what the kernel build says.

Derives again from the cached Debian packages and a booted guest, and fails when a fact
differs from the committed file (re-run ``nfteach vm derive --kernel K`` and review the diff).
"""
import sys

from nfteach.fidelity import derive, hidden
from nfteach.fidelity.elf import CLONE
from nfteach.model.profile import load_profile
from nfteach.vm import fetch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _diff(a, b, path=""):
    """Paths where the two parsed TOML documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    return [] if a == b else [f"{path}: committed {a!r}, derived now {b!r}"]


def test_committed_profile_matches_a_fresh_derivation(kernel):
    committed = derive.derived_path(kernel)
    assert committed.is_file(), f"no {committed.name}; run `nfteach vm derive --kernel {kernel}`"
    fresh = tomllib.loads(derive.derive(kernel, guest=True, progress=lambda m: None))
    diff = _diff(tomllib.loads(committed.read_text()), fresh)
    assert not diff, f"{kernel}: run `nfteach vm derive --kernel {kernel}`; differences:\n" + "\n".join(diff[:40])


def test_hand_written_offsets_are_real_call_sites(kernel):
    """kstack offsets left hand-written (several call sites, or an indirect call) are, when the
    caller calls the callee directly at all, one of those call sites."""
    prof = load_profile(kernel, derived=False)
    man = fetch.read_manifest(kernel)
    debug = fetch.kernel_dir(kernel) / "debug"
    _mods, _clones, where = derive.function_facts(debug, derive.modelled_functions(prof))
    _unique, sites = derive.kstack_facts(where)
    for key, off in prof.extra["trace"]["kstack"].get("offsets", {}).items():
        if sites.get(key):
            assert off in sites[key], f"{kernel} {man['release']}: {key} = {off}, call sites {sites[key]}"


def test_hidden_functions_leave_no_trace_on_the_real_kernel(kernel):
    """``[trace.hidden]`` against function_graph on the guest, over the model's own paths
    (``hidden.MODEL_PATHS``): no hidden function shows (a ``"caller>callee"`` one not under
    that caller), and each conntrack function the simulator shows, the real trace shows too."""
    from nfteach.lab import Lab
    from nfteach.sim.trace.kdata import KData
    from nfteach.sim.trace.state import HELPERS

    graph = "sudo trace-cmd start -p function_graph -g nf_hook_slow -g tcp_v4_rcv -g __dev_queue_xmit"
    prof = load_profile(kernel)
    kd = KData(prof)
    traces = {}
    for backend in ("sim", "vm"):
        with Lab(backend, kernel=kernel) as lab:
            assert lab.run(graph).status == 0
            lab.script(hidden.MODEL_PATHS)
            lab.run("sudo trace-cmd stop")
            text = lab.backend.exec_raw(["cat", "/sys/kernel/tracing/trace"]).stdout if backend == "vm" else \
                lab.run("sudo cat /sys/kernel/debug/tracing/trace").output
            lab.run("sudo trace-cmd reset")
        traces[backend] = hidden.graph_calls(text)
    real = traces["vm"]
    real_names = {c for _p, c in real}
    why = prof.extra["trace"]["hidden"]["why"]
    for f in prof.extra["trace"]["hidden"]["functions"]:
        if ">" in f:
            caller, callee = f.split(">")
            assert (kd.symbols.get(caller, caller), kd.symbols.get(callee, callee)) not in real, f"{f}: {why[f]}"
        else:
            sym = kd.symbols.get(f, f)
            assert not {n for n in real_names if n == sym or n.startswith(sym + ".")}, f"{f} shows: {why[f]}"
    # by base name: which clone a call site reaches is not [trace.hidden]'s (5.10's
    # nf_ct_kill_acct calls nf_ct_delete.part.0; the model's nf_ct_delete has the one name)
    conntrack = {_base(s) for s in prof.extra["trace"]["modules"]}  # modelled functions in modules
    helpers = {kd.symbols.get(f, f) for f in HELPERS}
    shown = {_base(c) for _p, c in traces["sim"] if _base(c) in conntrack and c not in helpers}
    real_bases = {_base(c) for c in real_names}
    assert shown and shown <= real_bases, f"{kernel}: sim shows {sorted(shown - real_bases)}, the kernel does not"


def _base(symbol):
    m = CLONE.match(symbol)
    return m["base"] if m else symbol
