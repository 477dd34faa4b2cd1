"""SIGKILL of the process that owns a ``vm`` lab, mid-scenario: the next start leaves no
orphan QEMU and no stale run directory or sockets.

Runs on a private cache (``tests/fault/vmcache.py``: links to the real cache's images), so
the run directories it inspects are its own, never those of other labs on this machine.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .vmcache import private_cache, why_no_vm

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "5.10"
WHY = why_no_vm(KERNEL)

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from nfteach.lab import Lab
    from nfteach.vm.backend import VmBackend
    lines = [ln for ln in Path(sys.argv[1]).read_text().splitlines()
             if ln.strip() and not ln.startswith("#") and "list-nf-hooks" not in ln]
    b = VmBackend(kernel=sys.argv[2], build=False)
    lab = Lab(b).start()
    print(b.qemu_pid, b.qemu.run_dir, flush=True)
    while True:
        for line in lines:
            lab.run(line)
            print("ran", flush=True)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_kill_owner_mid_scenario_then_start_cleans_up(tmp_path, monkeypatch):
    cache = private_cache(tmp_path, KERNEL)
    env = dict(os.environ, NFTEACH_CACHE=str(cache), PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT / "nfteach/scenarios/article.lab"), KERNEL],
                             stdout=subprocess.PIPE, text=True, env=env)
    qemu_pid = None
    try:
        first = child.stdout.readline().split()
        assert len(first) == 2, f"the child lab did not start: {first}"
        qemu_pid, run_dir = int(first[0]), Path(first[1])
        assert run_dir.parent == cache / "run"
        for _ in range(3):
            assert child.stdout.readline().strip() == "ran"
        assert (run_dir / "serial.sock").exists() and (run_dir / "qmp.sock").exists()
        os.kill(child.pid, signal.SIGKILL)  # the QEMU parent dies mid-scenario
        child.wait(timeout=30)

        monkeypatch.setenv("NFTEACH_CACHE", str(cache))
        from nfteach.lab import Lab
        from nfteach.vm.backend import VmBackend

        with Lab(VmBackend(kernel=KERNEL, build=False)) as lab:
            assert lab.run("uname -r").status == 0
            deadline = time.monotonic() + 10
            while _alive(qemu_pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _alive(qemu_pid), f"orphan qemu {qemu_pid} of the killed lab is still running"
            assert not run_dir.exists(), f"stale run directory {run_dir} (sockets, overlay) left"
            mine = lab.backend.qemu.run_dir
            assert sorted((cache / "run").iterdir()) == [mine]
        assert not list((cache / "run").iterdir())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        if qemu_pid and _alive(qemu_pid) and "qemu" in Path(f"/proc/{qemu_pid}/cmdline").read_text():
            os.kill(qemu_pid, signal.SIGKILL)  # ours (started by our child): never leave it behind
