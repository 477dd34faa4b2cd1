"""The lab never touches the machine's root namespace and cleans up after itself, even
after a SIGKILL; several labs run side by side."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from nfteach.lab import Lab
from nfteach.live.backend import LiveBackend
from nfteach.live.namespaces import STATE_DIR, LabStamp, alive, list_netns

pytestmark = pytest.mark.live


@pytest.fixture(scope="module", autouse=True)
def root_unchanged(root_snapshot):
    before = root_snapshot()
    yield
    after = root_snapshot()
    for key in before:
        assert after[key] == before[key], f"root namespace changed: {key}"


def test_start_close_leaves_nothing():
    b = LiveBackend()
    b.start()
    names = list(b.ns.names.values())
    stamp = b.ns.stamp.path
    pids = b.session.pids()
    assert set(names) <= set(list_netns())
    assert stamp.exists()
    out = b.run("vm", ["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
    assert "192.168.122.204/24" in out.text
    out = b.run("host", ["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
    assert "192.168.122.1/24" in out.text
    b.close()
    assert not set(names) & set(list_netns())
    assert not stamp.exists()
    time.sleep(0.2)
    assert not any(alive(p, None) for p in pids)
    b.close()  # idempotent


def test_kernel_profile():
    b = LiveBackend()
    import platform

    rel = platform.release()
    expect = "6.18" if rel.startswith("6.18") else ".".join(rel.split(".")[:2])
    assert b.kernel == expect
    assert b.name == "live"


CRASHER = textwrap.dedent(
    """
    import sys, time
    from nfteach.lab import Lab
    from nfteach.live.backend import LiveBackend
    lab = Lab(LiveBackend()).start()
    lab.run("modprobe nf_conntrack enable_hooks=1")
    lab.run("nft add table ip t")
    lab.run("iptables-legacy -A INPUT -p tcp --dport 2570 -j DROP")
    job = lab.run("@host nc -l 5555 &")
    print(lab.backend.ns.lab_id, flush=True)
    time.sleep(600)
    """
)


def test_sigkill_leftovers_are_reaped_and_only_ours():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), *sys.path]))
    p = subprocess.Popen([sys.executable, "-c", CRASHER], stdout=subprocess.PIPE, text=True, env=env)
    lab_id = p.stdout.readline().strip()
    assert lab_id.startswith("nfteach-"), lab_id
    stamp = LabStamp.load(STATE_DIR / f"{lab_id}.json")
    assert stamp is not None and len(stamp.procs) >= 3  # server, client, nc job
    with Lab(LiveBackend()) as running:  # a lab that is alive while the crash happens
        running.run("nft add table ip survivor")
        os.kill(p.pid, signal.SIGKILL)  # mid-scenario
        p.wait()
        p.stdout.close()
        left = [n for n in list_netns() if n.startswith(lab_id)]
        assert len(left) == 2, "the killed lab left its namespaces (as expected before a reap)"
        # a namespace that looks like ours but has no stamp must survive the reap
        decoy = "nfteach-1-abcdef-vm"
        subprocess.run(["ip", "netns", "add", decoy], check=True)
        try:
            with Lab(LiveBackend()) as fresh:
                fresh.run("conntrack -L")
            assert not [n for n in list_netns() if n.startswith(lab_id)]
            assert not (STATE_DIR / f"{lab_id}.json").exists()
            assert decoy in list_netns()
            for spid, st in stamp.procs.items():
                assert not alive(int(spid), st), f"process {spid} of the killed lab survived"
            assert "survivor" in running.run("nft list tables").output
        finally:
            subprocess.run(["ip", "netns", "del", decoy])


def _one_lab(i):
    with Lab(LiveBackend()) as lab:
        lab.run("modprobe nf_conntrack enable_hooks=1")
        lab.run(f"nft add table ip lab{i}")
        lab.run("@host nc -w 1 -z 192.168.122.204 22")
        ct = lab.run("conntrack -L").output
        tables = lab.run("nft list tables").output
        sport = lab.backend.session.sport
        return ct, tables, sport


def test_four_labs_at_once():
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(_one_lab, range(4)))
    for i, (ct, tables, sport) in enumerate(results):
        assert f"table ip lab{i}" in tables
        assert sum(f"table ip lab{j}" in tables for j in range(4)) == 1
        assert "2 flow entries have been shown" in ct, ct
        assert f"sport={sport} dport=22" in ct and "TIME_WAIT" in ct
