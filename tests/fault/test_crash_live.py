"""SIGKILL of a ``live`` lab mid-scenario: the next lab start removes that lab's leftovers
and nothing else (a namespace the lab did not stamp survives)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .machine import why_no_live

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]


WHY = why_no_live()

# The article, over and over, in a child process; it says its lab id, then keeps going.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from nfteach.lab import Lab
    from nfteach.live.backend import LiveBackend
    lines = [ln for ln in Path(sys.argv[1]).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    lab = Lab(LiveBackend()).start()
    lab.run("@host nc -l 5555 &")          # a background job: one more process to reap
    print(lab.backend.ns.lab_id, lab.backend.tmpdir, flush=True)
    while True:
        for line in lines:
            lab.run(line)
            print("ran", flush=True)
    """
)


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
def test_sigkill_mid_scenario_then_start_reaps_only_its_own():
    from nfteach.lab import Lab
    from nfteach.live.backend import LiveBackend
    from nfteach.live.namespaces import STATE_DIR, LabStamp, alive, list_netns

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ROOT / "nfteach/scenarios/article.lab")],
                             stdout=subprocess.PIPE, text=True, env=env)
    decoy = f"nfteach-decoy-{os.getpid()}"
    try:
        lab_id, tmpdir = child.stdout.readline().split()
        assert lab_id.startswith("nfteach-")
        for _ in range(5):  # mid-scenario: a few commands in, and more on their way
            assert child.stdout.readline().strip() == "ran"
        stamp = LabStamp.load(STATE_DIR / f"{lab_id}.json")
        assert stamp is not None and len(stamp.procs) >= 3, stamp  # server, client, nc job
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert sorted(n for n in list_netns() if n.startswith(lab_id)) == sorted(stamp.namespaces)
        # not stamped by any lab: looks like ours, is not ours
        subprocess.run(["ip", "netns", "add", decoy], check=True)
        t0 = time.monotonic()
        with Lab(LiveBackend()) as fresh:
            reap_s = time.monotonic() - t0
            assert fresh.run("conntrack -L").status == 0
            assert not [n for n in list_netns() if n.startswith(lab_id)], "the killed lab's namespaces are left"
            assert not (STATE_DIR / f"{lab_id}.json").exists()
            assert not Path(tmpdir).exists(), f"temp dir {tmpdir} left"
            for spid, st in stamp.procs.items():
                assert not alive(int(spid), st), f"process {spid} of the killed lab survived"
            assert decoy in list_netns(), "a namespace without a stamp was removed"
        assert reap_s < 60
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        subprocess.run(["ip", "netns", "del", decoy], capture_output=True)
    assert decoy not in list_netns()


def _inside(namespaces) -> dict:
    """pid -> start time of every process in these network namespaces (``ip netns pids``)."""
    from nfteach.procs import proc_starttime

    out = {}
    for ns in namespaces:
        p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for word in p.stdout.split():
            out[int(word)] = proc_starttime(int(word))
    return out


# A lab that ends without close(): SIGTERM, os._exit (no atexit), or plain exit (atexit).
ENDS = {
    "sigterm": "import time; time.sleep(600)",
    "os._exit": "import os; os._exit(0)",
    "exit without close()": "pass",
}
CHILD_END = textwrap.dedent(
    """
    import sys
    from nfteach.lab import Lab
    from nfteach.live.backend import LiveBackend
    lab = Lab(LiveBackend()).start()
    lab.run("@host nc -l 5555 &")
    lab.run("conntrack -E &")
    print(lab.backend.ns.lab_id, lab.backend.tmpdir, flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.skipif(WHY is not None, reason=WHY or "")
@pytest.mark.parametrize("end", list(ENDS))
def test_lab_removes_itself_when_its_process_ends(end):
    """No later lab start needed: the lab's reaper (or atexit) removes everything."""
    from nfteach.live.namespaces import STATE_DIR, LabStamp, alive, list_netns

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    child = subprocess.Popen([sys.executable, "-c", CHILD_END + ENDS[end]], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        lab_id, tmpdir = child.stdout.readline().split()
        stamp = LabStamp.load(STATE_DIR / f"{lab_id}.json")
        assert stamp is not None and len(stamp.procs) >= 4, stamp  # server, client, two jobs
        inside = _inside(stamp.namespaces)  # every process in the lab's namespaces (sandboxes too)
        assert len(inside) >= 4, inside
        if end == "sigterm":
            child.stdin.write("\n")
            child.stdin.flush()
            time.sleep(0.5)
            child.send_signal(signal.SIGTERM)
        else:
            child.stdin.write("\n")
            child.stdin.flush()
        child.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            (STATE_DIR / f"{lab_id}.json").exists() or any(n.startswith(lab_id) for n in list_netns())
        ):
            time.sleep(0.2)
        assert not [n for n in list_netns() if n.startswith(lab_id)], f"{end}: namespaces left"
        assert not (STATE_DIR / f"{lab_id}.json").exists(), f"{end}: stamp left"
        assert not Path(tmpdir).exists(), f"{end}: temp dir left"
        for spid, st in stamp.procs.items():
            assert not alive(int(spid), st), f"{end}: process {spid} survived"
        for pid, st in inside.items():
            assert not alive(pid, st), f"{end}: process {pid} of the lab's namespaces survived"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stdin.close()
