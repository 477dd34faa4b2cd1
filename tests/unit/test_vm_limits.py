"""The vm backend's time limits, without QEMU: a fake console answers as the guest agent does."""
import sys

import pytest

from nfteach.model.errors import BackendUnavailable
from nfteach.vm import backend as vmb
from nfteach.vm.console import Console


class FakeConsole:
    def __init__(self, answers):
        self.answers, self.sent = list(answers), []

    def request(self, op, timeout=600, **fields):
        self.sent.append((op, timeout, fields))
        return self.answers.pop(0)

    def kernel_trouble(self):
        return ""


class FakeBackend:
    command_timeout = 7.0
    _gen = 1

    def __init__(self, console):
        self.console = console

    def _call(self, fn, console=None):
        return fn(console or self.console)


def test_default_limit_is_below_a_cells_limit(monkeypatch):
    monkeypatch.delenv(vmb.ENV_COMMAND_TIMEOUT, raising=False)
    assert vmb.default_command_timeout() < 600


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "1e9"])
def test_bad_limit_is_one_line(monkeypatch, raw):
    monkeypatch.setenv(vmb.ENV_COMMAND_TIMEOUT, raw)
    with pytest.raises(BackendUnavailable) as e:
        vmb.default_command_timeout()
    assert vmb.ENV_COMMAND_TIMEOUT in str(e.value) and "\n" not in str(e.value)


def test_a_job_that_never_ends_is_killed_and_says_so():
    con = FakeConsole([{"timed_out": True}, {"ok": True},
                       {"chunks": [["out", "Attaching 1 probe...\n"]], "status": -9}])
    job = vmb.VmJob(FakeBackend(con), 1, ["bpftrace", "-e", "x"], "vm", 42, 1)
    out = job.wait()
    ops = [(op, f.get("wait_s"), f.get("sig")) for op, _, f in con.sent]
    assert ops == [("wait", 7.0, None), ("signal", None, 9), ("wait", 30, None)]
    assert out.text.startswith("Attaching 1 probe...\n")
    assert "bpftrace did not end within 7 s and was killed" in out.text
    assert job.wait() is out  # the result is kept


def test_a_timed_out_command_names_the_limit():
    out = vmb._output({"chunks": [["out", "partial\n"]], "timed_out": True, "status": -9}, 240)
    assert out.status == 124
    assert "did not finish within 240 s" in out.text and vmb.ENV_COMMAND_TIMEOUT in out.text


def test_kernel_trouble_is_read_from_the_console_log(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"boot\r\n@@NFT@@ e30= @@END@@\r\n[  12.3] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!\r\n"
                    b"[  13.0] Kernel panic - not syncing: softlockup: hung tasks\r\n")
    con = Console.__new__(Console)
    con.log_path = log
    trouble = con.kernel_trouble()
    assert "soft lockup" in trouble and "Kernel panic" in trouble and "@@NFT@@" not in trouble
    con.log_path = tmp_path / "missing.log"
    assert con.kernel_trouble() == ""


@pytest.mark.skipif(sys.platform == "emscripten", reason="starts processes, which Pyodide (emscripten) has none of")
def test_a_starting_lab_of_a_live_process_is_not_stale(tmp_path, monkeypatch):
    """Two labs starting at once: the second's clean-up must not remove the first's run
    directory before its QEMU wrote its pid file (a vm boot once failed with 'qemu exited at once')."""
    import os
    import subprocess

    from nfteach.vm import qemu

    monkeypatch.setattr(qemu, "runs_dir", lambda: tmp_path)
    starting = tmp_path / "nfteach-5.10-a"
    starting.mkdir()
    (starting / "owner").write_text(qemu.owner_stamp())          # this process: alive, no qemu.pid yet
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = tmp_path / "nfteach-5.10-b"
    gone.mkdir()
    (gone / "owner").write_text(f"{dead.pid} -\n")                # its process has ended
    reused = tmp_path / "nfteach-5.10-c"
    reused.mkdir()
    (reused / "owner").write_text(f"{os.getpid()} 1\n")          # our PID, but another start time
    assert sorted(p.name for p in qemu.stale_runs()) == ["nfteach-5.10-b", "nfteach-5.10-c"]


@pytest.mark.parametrize("raw,ok", [("", 2048), ("768", 768), ("512", 512), ("100", None), ("2G", None),
                                    ("99999", None), ("-1", None)])
def test_guest_memory_setting(monkeypatch, raw, ok):
    monkeypatch.setenv(vmb.ENV_MEMORY, raw)
    if ok is None:
        with pytest.raises(BackendUnavailable) as e:
            vmb.default_memory()
        assert vmb.ENV_MEMORY in str(e.value)
    else:
        assert vmb.default_memory() == ok
        assert vmb.VmBackend(kernel="5.10").memory == str(ok)
