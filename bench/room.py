"""What one workshop attendee costs on this machine, and how many fit on a node.

    python bench/room.py --quick       # CI smoke (~30 s): sim kernels for notebooks 00 and 01
    python bench/room.py               # sim: every notebook, the Jupyter server; vm: 5.10 and 6.1
    python bench/room.py --vm-memory 2048 --vm-memory 768 --vm-memory 512

Writes ``bench/room.json`` (every number) and prints the table of ``docs/sizing.md``.

* **sim**: each notebook runs in a fresh ipykernel (as JupyterLab gives each open notebook
  its own kernel), driven by nbclient. Peak memory is the kernel's ``VmHWM``; the kernel's
  process tree (kernel + children) is also sampled every 0.1 s (``VmRSS``). Idle memory
  is the kernel's RSS one second after its last cell; CPU is the kernel's user+sys
  (``/proc/PID/stat`` utime+stime+cutime+cstime). A bare kernel (one ``pass``) and an
  idle Jupyter server (``jupyter lab`` on a unix socket) are measured for reference.
* **vm**: one lab per kernel and guest memory (``-m``), in a worker process of its own:
  boot from the cache, ``article.lab``, then a drgn program on the guest (what notebooks
  04-08 load). QEMU's RSS is sampled every 0.1 s; its CPU is its utime+stime; the worker's
  own ``VmHWM`` is the Python side (the notebook kernel's share). Disk is what the run
  directory holds plus the blocks of deleted files QEMU keeps open there (the
  ``snapshot=on`` overlay).

Benchmarks, not tests: the machine is shared, so the load average at the start is recorded.
Processes this script starts are ended by their PID, nothing else.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine, md_table  # noqa: E402

ROOT = HERE.parent
NOTEBOOKS = ROOT / "notebooks"
SCENARIOS = ROOT / "nfteach" / "scenarios"
TICK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024

#: nodes the sizing is derived for: (label, cores, GiB)
NODES = (("this machine", os.cpu_count() or 2, None), ("8 cores / 32 GiB", 8, 32), ("16 cores / 64 GiB", 16, 64))
#: CPU sizing: in the busiest minute of a workshop this share of the room starts a step at
#: once (sim: a notebook, kernel start to last cell; vm: a boot and the article's commands) ...
BUSY_SHARE = 0.25
#: ... and that minute may use this share of the node's cores
UTILISATION = 0.7
#: memory kept for the OS, the hub and the proxy on a node
RESERVED_GIB = 2.0
#: memory headroom on top of the measured peak
HEADROOM = 1.25
#: vm labs an attendee may have at once: notebook 10 boots a second kernel next to its own
#: lab, and a notebook left open keeps its guest until its kernel is shut down or culled
VM_LABS_OPEN = 2
#: seconds a booted guest is left idle to measure what an idle lab costs
IDLE_S = 15.0


# -- /proc --------------------------------------------------------------------------------
def _status(pid: int, key: str) -> int:
    """``VmRSS``/``VmHWM`` of ``pid`` in bytes (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int, children: bool = True) -> float:
    """utime+stime (and the reaped children's, cutime+cstime) of ``pid``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = stat[stat.rindex(")") + 2:].split()
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / TICK


def descendants(pid: int) -> List[int]:
    kids: Dict[int, List[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                s = (d / "stat").read_text()
                kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d.name))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


class Sampler:
    """Peak of the summed ``VmRSS`` of a process tree, sampled every ``period`` seconds."""

    def __init__(self, pid: int, period: float = 0.1, tree: bool = True):
        self.pid, self.period, self.tree = pid, period, tree
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = descendants(self.pid) if self.tree else [self.pid]
            self.peak = max(self.peak, sum(_status(p, "VmRSS") for p in pids))
            self._stop.wait(self.period)

    def __enter__(self) -> Sampler:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


# -- sim: Jupyter kernels -------------------------------------------------------------------
def sim_kernel(notebook: Optional[Path], kernel: str = "5.10", backend: str = "sim") -> Dict:
    """One fresh ipykernel: run ``notebook`` (or just ``pass``), then sit idle for a second.

    On ``vm`` the kernel's process tree includes the notebook's QEMU guests (children of
    the kernel); their CPU is counted once the notebook's last cell closed the lab."""
    import nbformat
    from nbclient import NotebookClient

    if notebook is None:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    else:
        nb = nbformat.read(str(notebook), as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    saved = {k: os.environ.get(k) for k in ("NFTEACH_BACKEND", "NFTEACH_KERNEL")}
    os.environ.update(NFTEACH_BACKEND=backend, NFTEACH_KERNEL=kernel)
    t0 = time.perf_counter()
    try:
        client.km = client.create_kernel_manager()
        client.start_new_kernel(cwd=str(NOTEBOOKS))
        client.start_new_kernel_client()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    pid = client.km.provisioner.process.pid
    started = time.perf_counter() - t0
    rss_started = _status(pid, "VmRSS")
    ok, error = True, ""
    try:
        with Sampler(pid) as s:
            t1 = time.perf_counter()
            try:
                client.execute(cleanup_kc=False)
            except Exception as e:  # noqa: BLE001 - a failing cell is recorded, not raised
                ok, error = False, f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1][:120]}"
            run = time.perf_counter() - t1
            time.sleep(1.0)
        return {"notebook": notebook.stem if notebook else "(bare kernel)", "backend": backend, "kernel": kernel,
                "ok": ok, "error": error,
                "start_s": started, "run_s": run, "rss_started": rss_started,
                "peak_rss": max(_status(pid, "VmHWM"), s.peak), "tree_peak_rss": s.peak,
                "idle_rss": _status(pid, "VmRSS"), "cpu_s": cpu_seconds(pid)}
    finally:
        client._cleanup_kernel()


def jupyter_server(wait: float = 8.0) -> Dict:
    """An idle ``jupyter lab`` (the single-user server of a hub) on a unix socket, no kernel."""
    if not shutil.which("jupyter"):
        return {"skipped": "no jupyter on PATH"}
    d = Path(tempfile.mkdtemp(prefix="nfteach-room-"))
    argv = ["jupyter", "lab", "--no-browser", f"--ServerApp.sock={d / 'lab.sock'}",
            "--ServerApp.token=", f"--ServerApp.root_dir={NOTEBOOKS}", "--allow-root"]
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(d))
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        end = time.monotonic() + 60
        while not (d / "lab.sock").exists() and time.monotonic() < end and p.poll() is None:
            time.sleep(0.2)
        if not (d / "lab.sock").exists():
            return {"skipped": f"jupyter lab did not start (exit {p.poll()})"}
        time.sleep(wait)
        return {"idle_rss": sum(_status(q, "VmRSS") for q in descendants(p.pid)),
                "cpu_s": cpu_seconds(p.pid)}
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def sim(quick: bool, say) -> Dict:
    nbs = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    if quick:
        nbs = nbs[:2]
    out: Dict = {"kernels": []}
    say("sim: a bare kernel")
    out["kernels"].append(sim_kernel(None))
    for nb in nbs:
        say(f"sim: {nb.stem}")
        out["kernels"].append(sim_kernel(nb))
    runs = out["kernels"][1:]
    out["course"] = {"notebooks": len(runs), "ok": sum(r["ok"] for r in runs),
                     "max_peak_rss": max(r["peak_rss"] for r in runs),
                     "sum_idle_rss": sum(r["idle_rss"] for r in runs),
                     "cpu_s": sum(r["cpu_s"] for r in runs),
                     "wall_s": sum(r["start_s"] + r["run_s"] for r in runs)}
    if not quick:
        say("sim: an idle jupyter lab server")
        out["server"] = jupyter_server()
    return out


# -- vm: one worker process per lab -----------------------------------------------------------
def _open_blocks(pid: int, under: Path) -> int:
    """Allocated bytes of the files ``pid`` holds open under ``under``, deleted or not."""
    total, seen = 0, set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0
    for fd in fds:
        try:
            target = os.readlink(fd)
            if not target.startswith(str(under)):
                continue
            st = os.stat(fd)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen and not os.path.isdir(fd):
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def vm_worker(kernel: str, memory: str) -> Dict:
    """Boot, article, drgn: run in a process of its own (``--vm-worker``)."""
    from nfteach import Lab, course
    from nfteach.vm.backend import VmBackend

    sys.path.insert(0, str(HERE))
    from course import vm_cache_state  # bench/course.py

    why = vm_cache_state(kernel)
    if why:
        return {"skipped": f"not measured: {why}"}
    backend = VmBackend(kernel=kernel, memory=memory, build=False)
    lab = Lab(backend)
    res: Dict = {"kernel": kernel, "memory_mib": int(memory), "python_rss_start": _status(os.getpid(), "VmRSS")}
    t0 = time.perf_counter()
    boot_sampler: Optional[Sampler] = None
    try:
        starter = threading.Thread(target=lab.start, daemon=True)
        starter.start()
        while starter.is_alive() and (backend.qemu is None or backend.qemu.proc is None):
            time.sleep(0.02)
        if backend.qemu is not None and backend.qemu.proc is not None:
            boot_sampler = Sampler(backend.qemu.proc.pid, tree=False).__enter__()
        starter.join()
        if backend.console is None:
            return {**res, "ok": False, "error": "the guest did not boot", "boot_s": time.perf_counter() - t0,
                    "qemu_peak_rss": boot_sampler.peak if boot_sampler else 0}
        res["boot_s"] = time.perf_counter() - t0
        qpid = backend.qemu.proc.pid
        run_dir = backend.qemu.run_dir
        res["release"] = backend.release
        res["qemu_rss_booted"] = _status(qpid, "VmRSS")
        res["qemu_cpu_boot_s"] = cpu_seconds(qpid, children=False)
        t1 = time.perf_counter()
        tr = lab.script((SCENARIOS / "article.lab").read_text())
        res["article_s"] = time.perf_counter() - t1
        res["commands"] = len(tr.results)
        res["internal_errors"] = sum("internal error" in r.output for r in tr.results)
        res["qemu_rss_after_article"] = _status(qpid, "VmRSS")
        res["python_rss_after_article"] = _status(os.getpid(), "VmRSS")
        t2 = time.perf_counter()
        prog = course.program(lab)
        if prog is not None:
            res["drgn_init_net_ok"] = bool(prog["init_net"].address_)
        res["drgn_s"] = time.perf_counter() - t2
        del prog
        res["qemu_cpu_s"] = cpu_seconds(qpid, children=False)
        # an attendee reading the notebook: the guest sits idle, but TCG still ticks
        time.sleep(IDLE_S)
        res["qemu_idle_cores"] = (cpu_seconds(qpid, children=False) - res["qemu_cpu_s"]) / IDLE_S
        res["disk_run_dir"] = _du(run_dir)
        res["disk_open_overlay"] = _open_blocks(qpid, run_dir)
        res["qemu_rss_end"] = _status(qpid, "VmRSS")
        res["qemu_hwm"] = _status(qpid, "VmHWM")
        res["ok"] = res["internal_errors"] == 0
    except Exception as e:  # noqa: BLE001 - a failed lab is a measurement too
        res.update(ok=False, error=f"{type(e).__name__}: {' '.join(str(e).split())[:200]}")
    finally:
        if boot_sampler is not None:
            boot_sampler.__exit__()
            res["qemu_peak_rss"] = max(boot_sampler.peak, res.get("qemu_hwm", 0))
        lab.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res["python_peak_rss"] = _status(os.getpid(), "VmHWM")
    res["python_cpu_s"] = ru.ru_utime + ru.ru_stime
    res["wall_s"] = time.perf_counter() - t0
    return res


def vm_notebooks(kernel: str, names: List[str], say) -> List[Dict]:
    """Whole notebooks on ``vm`` (e.g. 05-bpftrace: bpftrace in the guest; 10: two more guests)."""
    out = []
    for name in names:
        nb = next(NOTEBOOKS.glob(f"{name}*.ipynb"), None)
        if nb is None:
            continue
        say(f"vm notebook: {nb.stem} on {kernel}")
        out.append(sim_kernel(nb, kernel, backend="vm"))
    return out


def vm(kernels: List[str], memories: List[str], say) -> Dict:
    out = {}
    for k in kernels:
        for m in memories:
            say(f"vm: kernel {k}, -m {m}")
            p = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--vm-worker", k, m],
                               capture_output=True, text=True, cwd=ROOT, timeout=1800, stdin=subprocess.DEVNULL)
            try:
                out[f"{k}/{m}"] = json.loads(p.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                out[f"{k}/{m}"] = {"ok": False, "error": f"worker exit {p.returncode}: {p.stderr.strip()[-300:]}"}
    return out


# -- sizing ---------------------------------------------------------------------------------
def _gib(b: float) -> float:
    return b / 1024 ** 3


def node_memory_gib(label_gib: Optional[float]) -> float:
    if label_gib is not None:
        return float(label_gib)
    kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:")).split()[1])
    return kb / 1024 / 1024


def per_attendee(res: Dict) -> Dict:
    """Memory, CPU seconds of one step and idle cores of one attendee, per room kind."""
    out = {}
    s = res["sim"]
    server = s.get("server", {}).get("idle_rss", 0)
    bare = s["kernels"][0]["idle_rss"]
    runs = s["kernels"][1:]
    # sim: the server, the notebook being run at its peak, two more kernels left open (idle)
    idle2 = sorted((r["idle_rss"] for r in runs), reverse=True)[:2]
    out["sim"] = {"memory": server + s["course"]["max_peak_rss"] + sum(idle2), "idle_cores": 0.0,
                  "step_cpu_s": max(r["cpu_s"] for r in runs), "step": "a notebook: kernel start + cells",
                  "burst_cpu_s": max(r["cpu_s"] for r in runs)}
    for key, d in res.get("vm", {}).items():
        if not d.get("ok"):
            continue
        k, m = key.split("/")
        python = bare + max(0, d["python_peak_rss"] - d["python_rss_start"])
        lab = d["qemu_peak_rss"] + python
        out[f"vm {k} -m {m}"] = {"memory": server + VM_LABS_OPEN * lab, "lab_memory": lab,
                                 "idle_cores": VM_LABS_OPEN * d["qemu_idle_cores"],
                                 "step_cpu_s": d["qemu_cpu_s"] + d["python_cpu_s"],
                                 "step": "boot + article + drgn", "burst_cpu_s": d["qemu_cpu_boot_s"]}
    return out


def sizing(res: Dict) -> List[Dict]:
    rows = []
    for kind, a in per_attendee(res).items():
        for label, cores, gib in NODES:
            mem = node_memory_gib(gib)
            by_mem = math.floor((mem - RESERVED_GIB) / _gib(a["memory"] * HEADROOM))
            # CPU: the idle labs run all the time; in the busiest minute BUSY_SHARE of the
            # room runs a step; both fit in UTILISATION of the cores
            per = a["idle_cores"] + BUSY_SHARE * a["step_cpu_s"] / 60.0
            by_cpu = math.floor(UTILISATION * cores / per)
            n = min(by_mem, by_cpu)
            rows.append({"kind": kind, "node": label if gib else f"this machine ({cores} cores / {mem:.0f} GiB)",
                         "by_memory": by_mem, "by_cpu": by_cpu, "attendees": n,
                         # everybody starts at the same moment (the first cell of a notebook)
                         "all_at_once_s": n * a["burst_cpu_s"] / cores})
    return rows


# -- the table ------------------------------------------------------------------------------
def _mib(b) -> str:
    return f"{b / MiB:.0f} MiB" if b else "-"


def table(res: Dict) -> str:
    s = res["sim"]
    rows = [(r["notebook"], "ok" if r["ok"] else f"FAILED {r['error']}", f"{r['start_s']:.1f} s",
             f"{r['run_s']:.1f} s", _mib(r["peak_rss"]), _mib(r["idle_rss"]), f"{r['cpu_s']:.1f} s")
            for r in s["kernels"]]
    c = s["course"]
    rows.append((f"course ({c['notebooks']} kernels)", f"{c['ok']}/{c['notebooks']} ok", "", f"{c['wall_s']:.1f} s",
                 f"max {_mib(c['max_peak_rss'])}", f"sum {_mib(c['sum_idle_rss'])}", f"{c['cpu_s']:.1f} s"))
    if "server" in s:
        sv = s["server"]
        rows.append(("jupyter lab server, idle", sv.get("skipped", "ok"), "", "", "",
                     _mib(sv.get("idle_rss", 0)), f"{sv.get('cpu_s', 0):.1f} s"))
    lines = ["sim: one ipykernel per notebook (nbclient), kernel profile 5.10", ""]
    lines += md_table(("notebook", "result", "kernel start", "run", "peak RSS", "idle RSS after", "CPU"), rows)
    if res.get("vm"):
        vrows = []
        for key, d in res["vm"].items():
            if "skipped" in d or "boot_s" not in d:
                vrows.append((key, d.get("skipped") or f"FAILED: {d.get('error', '?')}", "", "", "", "", "", "", ""))
                continue
            vrows.append((key, "ok" if d.get("ok") else f"FAILED: {d.get('error', '?')}", f"{d['boot_s']:.1f} s",
                          f"{d['article_s']:.1f} s" if "article_s" in d else "-",
                          _mib(d.get("qemu_rss_booted")), _mib(d.get("qemu_peak_rss")),
                          f"{d.get('qemu_cpu_s', 0):.0f} s", _mib(d.get("python_peak_rss")),
                          _mib(d.get("disk_run_dir", 0) + d.get("disk_open_overlay", 0))))
        lines += ["", "vm: one lab per kernel / guest memory (-m MiB): boot from cache, article.lab, a drgn program", ""]
        lines += md_table(("kernel/-m", "result", "boot", "article", "QEMU RSS booted", "QEMU peak RSS",
                      "QEMU CPU", "Python peak RSS", "disk"), vrows)
    if res.get("vm_notebooks"):
        nrows = [(f"{r['notebook']} on vm {r['kernel']}", "ok" if r["ok"] else f"FAILED {r['error']}",
                  f"{r['start_s']:.1f} s", f"{r['run_s']:.1f} s", _mib(r["tree_peak_rss"]), f"{r['cpu_s']:.0f} s")
                 for r in res["vm_notebooks"]]
        lines += ["", "vm notebooks: one ipykernel each; peak RSS of the kernel's process tree (its QEMU guests "
                      "included); CPU of the kernel and its reaped guests", ""]
        lines += md_table(("notebook", "result", "kernel start", "run", "peak RSS (tree)", "CPU"), nrows)
    lines += ["", f"sizing: attendees = min(by memory, by CPU); by memory = (node GiB - {RESERVED_GIB:.0f}) / "
                  f"(per attendee x {HEADROOM}), a vm attendee counting {VM_LABS_OPEN} labs open; by CPU = "
                  f"{UTILISATION:.0%} of the cores / (idle cores + {BUSY_SHARE:.0%} of the room running one step "
                  f"in the same minute); all at once = attendees x burst CPU / cores", ""]
    pa = per_attendee(res)
    lines += md_table(("room", "per attendee (memory)", "CPU of one step", "idle cores", "burst CPU"),
                 [(k, _mib(a["memory"]), f"{a['step_cpu_s']:.1f} s ({a['step']})", f"{a['idle_cores']:.3f}",
                   f"{a['burst_cpu_s']:.1f} s") for k, a in pa.items()])
    lines.append("")
    lines += md_table(("room", "node", "by memory", "by CPU", "attendees", "all start at once"),
                 [(r["kind"], r["node"], r["by_memory"], r["by_cpu"], r["attendees"], f"{r['all_at_once_s']:.0f} s")
                  for r in res["sizing"]])
    mc = res["machine"]
    lines.append(f"\n{res['mode']} run, {res['seconds']:.0f} s; machine: {mc['cpus']} cpus ({mc['cpu']}), {mc['memory']}, "
                 f"kernel {mc['kernel']}, /dev/kvm {'present' if mc['kvm'] else 'absent'}, python {mc['python']}, "
                 f"load average at start {mc['loadavg_at_start'][0]:.2f}, at end {res['loadavg_at_end'][0]:.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sim only, notebooks 00 and 01 (CI smoke)")
    ap.add_argument("--no-vm", action="store_true", help="do not boot the vm kernels")
    ap.add_argument("--kernel", action="append", help="vm kernels (default 5.10, 6.1 and 6.12)")
    ap.add_argument("--vm-memory", action="append", help="guest -m in MiB (repeatable; default 2048)")
    ap.add_argument("--vm-notebook", action="append", default=[],
                    help="also run this notebook (e.g. 05) on vm, first --kernel, in an ipykernel (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default bench/room.json; quick: none)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--from", dest="from_json", type=Path, help="recompute the sizing and table of a saved run")
    ap.add_argument("--vm-worker", nargs=2, metavar=("KERNEL", "MIB"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.vm_worker:
        print(json.dumps(vm_worker(*args.vm_worker)))
        return 0
    if args.from_json:
        res = json.loads(args.from_json.read_text())
        res["sizing"] = sizing(res)
        res["table"] = table(res)
        if args.out:
            args.out.write_text(json.dumps(res, indent=1) + "\n")
        print(res["table"])
        return 0
    say = (lambda m: None) if args.quiet else (lambda m: print(f"room: {m}", file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    res: Dict = {"mode": "quick" if args.quick else "full", "machine": machine(), "started": time.time()}
    res["sim"] = sim(args.quick, say)
    if not (args.quick or args.no_vm):
        res["vm"] = vm(args.kernel or ["5.10", "6.1", "6.12"], args.vm_memory or ["2048"], say)
        if args.vm_notebook:
            res["vm_notebooks"] = vm_notebooks((args.kernel or ["5.10"])[0], args.vm_notebook, say)
    res["sizing"] = sizing(res)
    res["loadavg_at_end"] = os.getloadavg()
    res["seconds"] = time.perf_counter() - t0
    res["table"] = table(res)
    out = args.out or (None if args.quick else HERE / "room.json")
    if out is not None:
        out.write_text(json.dumps(res, indent=1) + "\n")
    print(res["table"])
    bad = [r for r in res["sim"]["kernels"] if not r["ok"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
