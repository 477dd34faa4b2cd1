"""Bad input on every backend: one line ``nfteach: ...``, no traceback, the lab still usable.

Huge lines, NUL bytes, a script file that is not UTF-8, a pattern that makes a
backtracking regex engine run for ever, a waited-for job that never ends, ``drgn`` code
that loops or ends its own process, ``Lab.write_file`` paths that leave the lab. The vm
cases run on a private cache (``vmcache.py``); a backend that cannot start here is
skipped with the reason (no root, no qemu, no cached kernel).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .machine import changes, snapshot, why_no_live
from .vmcache import private_cache, why_no_vm

ROOT = Path(__file__).resolve().parents[2]
VM_KERNEL = "5.10"


BACKENDS = [
    pytest.param("sim", id="sim"),
    pytest.param("live", id="live", marks=[pytest.mark.live, pytest.mark.skipif(
        why_no_live() is not None, reason=why_no_live() or "")]),
    pytest.param("vm", id="vm", marks=[pytest.mark.vm, pytest.mark.skipif(
        why_no_vm(VM_KERNEL) is not None, reason=why_no_vm(VM_KERNEL) or "")]),
]


@pytest.fixture(scope="module", params=BACKENDS)
def lab(request, tmp_path_factory):
    from nfteach.lab import Lab

    if request.param == "vm":
        from nfteach.vm.backend import VmBackend

        cache = private_cache(tmp_path_factory.mktemp("vmcache"), VM_KERNEL)
        old = os.environ.get("NFTEACH_CACHE")
        os.environ["NFTEACH_CACHE"] = str(cache)
        try:
            with Lab(VmBackend(kernel=VM_KERNEL, build=False, command_timeout=20)) as lab:
                yield lab
        finally:
            if old is None:
                os.environ.pop("NFTEACH_CACHE", None)
            else:
                os.environ["NFTEACH_CACHE"] = old
    elif request.param == "live":
        from nfteach.live.backend import LiveBackend

        with Lab(LiveBackend(timeout=20)) as lab:
            yield lab
    else:
        with Lab("sim") as lab:
            yield lab


@pytest.fixture(autouse=True)
def machine_unchanged():
    before = snapshot()
    yield
    assert changes(before, snapshot()) == [], "the machine changed"


def one_line(r):
    assert r is not None
    assert r.output.startswith("nfteach: ") and r.output.count("\n") == 1, r.output[:300]
    assert "Traceback" not in r.output and "internal error" not in r.output
    assert r.status != 0


def usable(lab):
    r = lab.run("conntrack -L")
    assert r.status == 0 and "flow entries have been shown" in r.output, r.output


def test_huge_line(lab):
    for line in ("conntrack -L " + "a" * (64 * 1024), "x" * 1_000_000, "nft add table ip " + "\u00e9" * 40_000):
        r = lab.run(line)
        one_line(r)
        assert "64 KiB" in r.output and len(r.command) < 300
    r = lab.run("conntrack -L " + "a" * 60_000)  # under the limit: the tool itself answers
    assert r is not None and "Traceback" not in r.output
    usable(lab)


def test_nul_bytes(lab):
    for line in ("conntrack -L\x00", "\x00", "nft list ruleset \x00 x", "@host nc -z\x00 1.2.3.4 22"):
        one_line(lab.run(line))
    usable(lab)


def test_grep_does_not_backtrack(lab):
    """``(.|.)*XYZ`` over a 200-character line takes a backtracking engine 2^200 steps."""
    from nfteach import filters

    result = {}
    line = "tcp 6 431999 ESTABLISHED src=192.168.122.1 dst=192.168.122.204 " * 3 + "\n"
    t = threading.Thread(target=lambda: result.update(g=filters.grep(["grep", "-E", "(.|.)*XYZ"], line * 50),
                                                      r=lab.run("conntrack -L | grep -E '(.|.)*XYZ'")),
                         daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "grep is still matching after 60 s: exponential backtracking"
    assert result["g"] == ("", 1)  # no match, as GNU grep says
    assert result["r"].status == 1 and "Traceback" not in result["r"].output
    assert filters.grep(["grep", "-Eo", "dport=(2|22)+"], "sport=1 dport=22 x\n") == ("dport=22\n", 0)


def test_waited_job_ends_after_the_command_timeout(lab):
    if lab.name == "sim":
        pytest.skip("sim: conntrack -E ends when the model has no more events (no timeout to reach)")
    assert lab.run("conntrack -E &").status == 0
    r = lab.run("wait")
    assert "did not end within" in r.output, r.output
    usable(lab)


def test_write_file_paths_stay_in_the_lab(lab):
    from nfteach.model.errors import LabError

    for path in ("/vagrant/../../../tmp/nfteach-escape", "relative/file.py", "../x", "/a/\x00/b"):
        with pytest.raises(LabError) as e:
            lab.write_file(path, "print('escaped')\n")
        assert "\n" not in str(e.value)
    assert not Path("/tmp/nfteach-escape").exists()
    usable(lab)


def test_drgn_reads_only_lab_files(lab, tmp_path):
    if lab.name == "live":
        pytest.skip("live: drgn is refused (no /proc/kcore debug info); the sandbox has no drgn")
    pytest.importorskip("drgn")
    marker = tmp_path / "ran"
    script = tmp_path / "evil.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    r = lab.run(f"drgn {script}")
    assert r.status != 0 and not marker.exists(), r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("code", ["while True: pass", "import os; os._exit(3)"])
def test_drgn_code_cannot_take_the_lab_down(lab, monkeypatch, code):
    if lab.name == "live":
        pytest.skip("live: drgn is refused (no /proc/kcore debug info)")
    pytest.importorskip("drgn")
    from nfteach.introspect import drgn_cli

    monkeypatch.setattr(drgn_cli, "TIME_LIMIT", 5.0)
    r = lab.run(f'drgn -e "{code}"')
    if lab.name == "vm" and "_exit" in code:
        # vm: drgn is a process of its own on this machine; it ends as the code says
        assert r.status == 3 and "Traceback" not in r.output, r.output
    else:
        one_line(r)
    usable(lab)
    r = lab.run('drgn -e "print(6 * 7)"')
    assert r.output == "42\n", r.output


def test_script_file_not_utf8(tmp_path):
    script = tmp_path / "bad.lab"
    script.write_bytes(b"conntrack -L\n\xff\xfe nft list ruleset\n")
    p = subprocess.run([sys.executable, "-m", "nfteach", "shell", str(script)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("nfteach: ") and p.stderr.count("\n") == 1 and "UTF-8" in p.stderr
