"""``nfteach reset``: only this user's provably-own labs, stale by default; no QEMU needed.

The "QEMU" of a fake run directory is a ``sleep`` started here with an ``argv[0]`` that is
``qemu-system-x86_64`` inside the run directory: what ``nfteach.reset.qemu_pid`` checks for.
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

from nfteach import reset as R
from nfteach.cli import build_parser


def _need_processes():
    if sys.platform == "emscripten":
        pytest.skip("starts processes, which Pyodide (emscripten) has none of")


@pytest.fixture
def fake_qemu():
    """Start fake QEMUs (``sleep 600`` whose argv[0] is ``RUN/qemu-system-x86_64``), ended by PID."""
    _need_processes()
    procs = []

    def start(run):
        p = subprocess.Popen([f"{run}/qemu-system-x86_64", "600"], executable=shutil.which("sleep"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        # right after exec, /proc/PID/cmdline can still read empty for a moment; QEMU writes
        # its pid file itself, once it runs, so wait for the same here
        end = time.monotonic() + 10
        while not open(f"/proc/{p.pid}/cmdline", "rb").read() and time.monotonic() < end:
            time.sleep(0.01)
        (run / "qemu.pid").write_text(f"{p.pid}\n")
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _run(runs, name, owner):
    d = runs / name
    d.mkdir(parents=True)
    (d / "owner").write_text(f"{owner}\n")
    return d


@pytest.fixture
def dead_pid():
    _need_processes()
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def live_owner():
    _need_processes()
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield p.pid
    p.kill()
    p.wait()


def test_nothing_to_reset(tmp_path):
    rep = R.reset(runs=tmp_path / "run", live=False)
    assert rep.actions == [] and rep.lines() == ["nothing to reset: no lab of yours is left over"]


def test_stale_run_without_qemu_is_removed(tmp_path, dead_pid):
    d = _run(tmp_path / "run", "nfteach-5.10-aaa", dead_pid)
    rep = R.reset(runs=tmp_path / "run", live=False)
    assert [a.what for a in rep.actions] == [str(d)] and rep.actions[0].done
    assert not d.exists()
    assert "its QEMU is gone: ended" in rep.lines()[0]


def test_orphan_qemu_is_ended_by_pid(tmp_path, fake_qemu, dead_pid):
    d = _run(tmp_path / "run", "nfteach-6.1-bbb", dead_pid)
    q = fake_qemu(d)
    assert R.qemu_pid(d, os.getuid()) == q.pid
    rep = R.reset(runs=tmp_path / "run", live=False)
    assert rep.actions[0].done and f"QEMU {q.pid}, its notebook {dead_pid} is gone" in rep.lines()[0]
    assert q.wait(10) is not None and not d.exists()


def test_running_lab_is_kept_unless_all_mine(tmp_path, fake_qemu, live_owner):
    d = _run(tmp_path / "run", "nfteach-5.10-ccc", live_owner)
    q = fake_qemu(d)
    rep = R.reset(runs=tmp_path / "run", live=False)
    assert rep.actions == [] and d.exists() and q.poll() is None
    assert "still running, kept" in rep.lines()[0]
    rep = R.reset(runs=tmp_path / "run", live=False, all_mine=True)
    assert rep.actions[0].done and "(--all-mine)" in rep.actions[0].why
    assert q.wait(10) is not None and not d.exists()


def test_dry_run_changes_nothing(tmp_path, fake_qemu, dead_pid):
    d = _run(tmp_path / "run", "nfteach-5.10-ddd", dead_pid)
    q = fake_qemu(d)
    rep = R.reset(runs=tmp_path / "run", live=False, dry_run=True)
    assert rep.lines()[0].endswith("would end it")
    assert d.exists() and q.poll() is None


def test_a_pid_file_naming_another_process_is_not_trusted(tmp_path, dead_pid, live_owner):
    """qemu.pid points at a live process that is not this run's QEMU: never signalled."""
    d = _run(tmp_path / "run", "nfteach-5.10-eee", dead_pid)
    (d / "qemu.pid").write_text(f"{live_owner}\n")
    assert R.qemu_pid(d, os.getuid()) is None
    rep = R.reset(runs=tmp_path / "run", live=False)
    assert rep.actions[0].why == "its QEMU is gone"
    assert R.proc_uid(live_owner) is not None  # still alive


def test_a_starting_lab_is_left_alone(tmp_path):
    d = tmp_path / "run" / "nfteach-5.10-fff"
    d.mkdir(parents=True)  # no owner file yet, just created
    assert R.reset(runs=tmp_path / "run", live=False).actions == [] and d.exists()


def test_other_users_runs_are_not_mine(tmp_path, dead_pid):
    _run(tmp_path / "run", "nfteach-5.10-ggg", dead_pid)
    assert R.vm_runs(tmp_path / "run", os.getuid() + 1) == []


def test_live_stamps(tmp_path, monkeypatch, dead_pid, live_owner):
    """Stale stamp: removed with its tmpdir; running stamp: kept, unless --all-mine."""
    from nfteach.live import namespaces as ns

    monkeypatch.setattr(ns, "STATE_DIR", tmp_path / "labs")
    monkeypatch.setattr(ns, "list_netns", lambda: [])
    calls = []

    def fake_ip(*a, **k):
        calls.append(a)
        return subprocess.CompletedProcess(["ip", *a], 0, "", "")

    monkeypatch.setattr(ns, "_ip", fake_ip)
    tmpdir = tmp_path / "nfteach-tmp-1"
    tmpdir.mkdir()
    stale = ns.LabStamp("nfteach-1-aa", dead_pid, None, ns.boot_id(), ["nfteach-1-aa-vm"], str(tmpdir))
    from nfteach.model.cache import owner

    running = ns.LabStamp("nfteach-2-bb", live_owner, ns.proc_starttime(live_owner), ns.boot_id(),
                          ["nfteach-2-bb-vm", "nfteach-2-bb-host"], cache=owner())  # this cache's lab
    stale.save()
    running.save()
    rep = R.reset(runs=tmp_path / "run", live=True)
    assert [a.what for a in rep.actions] == ["nfteach-1-aa"] and not stale.path.exists() and not tmpdir.exists()
    assert running.path.exists() and any("nfteach-2-bb" in k for k in rep.kept)
    monkeypatch.setattr(ns, "list_netns", lambda: ["nfteach-2-bb-vm", "nfteach-2-bb-host", "nfteach-9-zz-vm"])
    rep = R.reset(runs=tmp_path / "run", live=True, all_mine=True)
    assert [a.what for a in rep.actions] == ["nfteach-2-bb"] and not running.path.exists()
    assert sorted(c[-1] for c in calls if c[1] == "del") == ["nfteach-2-bb-host", "nfteach-2-bb-vm"]  # never nfteach-9-zz
    assert sorted(c[-1] for c in calls if c[1] == "pids") == ["nfteach-2-bb-host", "nfteach-2-bb-vm"]


def test_cli_has_reset():
    args = build_parser().parse_args(["reset", "--all-mine", "--dry-run"])
    assert args.all_mine and args.dry_run and args.func is R.run


def test_course_reset_gives_a_fresh_lab_of_the_same_kind(monkeypatch):
    from nfteach import course

    calls = []
    monkeypatch.setattr(R, "reset", lambda **kw: calls.append(kw) or R.Report(False))
    lab = course.open_lab("sim", "6.1")
    fresh = course.reset(lab)
    try:
        assert fresh is not lab and (fresh.name, fresh.kernel) == ("sim", "6.1")
        assert calls == [{"all_mine": False}]
        assert fresh.run("sudo conntrack -L").status == 0  # started
    finally:
        fresh.close()
