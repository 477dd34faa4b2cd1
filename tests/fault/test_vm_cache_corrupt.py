"""Damaged files in the vm backend's cache: the backend refuses in one line or builds the
file again (saying why on stderr), never a traceback, never an orphan QEMU.

Every test works on a private cache (``tests/fault/vmcache.py``): links to the real cache,
and a *copy* of the one file it damages. The real cache is checked to be unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .vmcache import private_cache, real_cache, why_no_vm

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "5.10"
WHY = why_no_vm(KERNEL)
skip_no_vm = pytest.mark.skipif(WHY is not None, reason=WHY or "")

#: (case, file relative to the cache, bytes kept)
DAMAGE = [
    ("vmlinuz", f"kernels/{KERNEL}/image/vmlinuz", 100_000),
    ("initrd", f"kernels/{KERNEL}/image/initrd.gz", 1_000),
    ("disk-empty", f"kernels/{KERNEL}/image/disk.img", 0),
    ("disk-64M", f"kernels/{KERNEL}/image/disk.img", 64 << 20),
]


def _damaged_cache(tmp: Path, rel: str, keep: int) -> Path:
    cache = private_cache(tmp, KERNEL)
    dst = cache / rel
    dst.unlink()
    with open(real_cache() / rel, "rb") as src, open(dst, "wb") as out:
        left = keep
        while left > 0:  # a truncated copy, written without copying the whole file first
            block = src.read(min(left, 1 << 20))
            if not block:
                break
            out.write(block)
            left -= len(block)
    return cache


def _nfteach(cache: Path, *argv: str, timeout: float = 360) -> subprocess.CompletedProcess:
    env = dict(os.environ, NFTEACH_CACHE=str(cache), PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
    return subprocess.run([sys.executable, "-m", "nfteach", *argv], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _qemus_using(cache: Path) -> list:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "qemu-system" in cmd and str(cache) in cmd:
                out.append(int(d.name))
    return out


@pytest.fixture(scope="module")
def real_cache_fingerprint():
    """Size and mtime of every real cache file the tests link to; compared at the end."""
    def fp():
        files = {}
        for top in (f"kernels/{KERNEL}", "debs"):
            for p in sorted((real_cache() / top).rglob("*")):
                if p.is_file() and not p.name.endswith(".lock"):  # lock files are touched by any user
                    st = p.stat()
                    files[str(p)] = (st.st_size, st.st_mtime_ns)
        return files

    before = fp()
    yield
    assert fp() == before, "the real cache changed"


def _one_line_refusal(p: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("nfteach: "), p.stderr
    return lines[0]


def _refused_or_rebuilt(p: subprocess.CompletedProcess) -> str:
    """The damage is refused in one line, or the image is built again (the damage named on
    stderr, nothing of the build on stdout: that is the lab's output). Returns what named it."""
    if p.returncode != 0:
        return _one_line_refusal(p)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    assert "cloud-amd64" in p.stdout and "Creating" not in p.stdout, p.stdout
    named = [ln for ln in p.stderr.splitlines() if "not whole" in ln]
    assert named, p.stderr
    return named[0]


@skip_no_vm
@pytest.mark.parametrize("case,rel,keep", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_image_refused_or_rebuilt(tmp_path, real_cache_fingerprint, case, rel, keep):
    cache = _damaged_cache(tmp_path, rel, keep)
    p = _nfteach(cache, "shell", "--backend", "vm", "--kernel", KERNEL, "-c", "uname -r")
    _refused_or_rebuilt(p)
    assert not _qemus_using(cache), "a QEMU of the lab is still running"
    assert not [d for d in (cache / "run").iterdir()] if (cache / "run").exists() else True


@skip_no_vm
def test_damaged_image_is_named(tmp_path, real_cache_fingerprint):
    rel = f"kernels/{KERNEL}/image/vmlinuz"
    cache = _damaged_cache(tmp_path, rel, 100_000)
    line = _refused_or_rebuilt(_nfteach(cache, "shell", "--backend", "vm", "--kernel", KERNEL, "-c", "uname -r"))
    assert "vmlinuz" in line, line


@skip_no_vm
def test_damaged_manifest_lab_still_boots_or_refuses(tmp_path, real_cache_fingerprint):
    rel = f"kernels/{KERNEL}/manifest.json"
    cache = _damaged_cache(tmp_path, rel, 50)
    p = _nfteach(cache, "shell", "--backend", "vm", "--kernel", KERNEL, "-c", "uname -r")
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    if p.returncode != 0:
        _one_line_refusal(p)
    else:
        assert "cloud-amd64" in p.stdout
    assert not _qemus_using(cache)


def test_damaged_manifest_status_one_line(tmp_path):
    cache = tmp_path / "cache"
    mdir = cache / "kernels" / KERNEL
    mdir.mkdir(parents=True)
    (mdir / "manifest.json").write_text('{\n "kernel": "5.10",\n "suite": "bull')  # truncated
    p = _nfteach(cache, "vm", "status", timeout=60)
    assert "Traceback" not in p.stderr, p.stderr
    assert any("5.10" in ln and ("damaged" in ln or "corrupt" in ln) for ln in (p.stdout + p.stderr).splitlines())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached_deb():
    """A .deb that the real cache holds and whose manifest records size and sha256."""
    for k in ("5.10", "6.1"):
        m = real_cache() / "kernels" / k / "manifest.json"
        if not m.exists():
            continue
        for name, info in json.loads(m.read_text())["packages"].items():
            if (real_cache() / "debs" / name).exists():
                return k, name, info
    return None


def test_truncated_deb_is_noticed_and_fetched_again(tmp_path, monkeypatch):
    """``Apt.download`` compares size and sha256 with the signed package lists; a truncated
    ``.deb`` is removed and downloaded again. apt itself is replaced by a copy from the real
    cache (no network), so this checks nfteach's part: notice, say so, redo, verify."""
    from nfteach.vm import fetch

    found = _cached_deb()
    if found is None:
        pytest.skip(f"no cached .deb listed in a manifest under {real_cache()}")
    kernel, name, info = found
    real_deb = real_cache() / "debs" / name
    cache = tmp_path / "cache"
    debs = cache / "debs"
    debs.mkdir(parents=True)
    with open(real_deb, "rb") as src, open(debs / name, "wb") as out:
        out.write(src.read(info["size"] // 3))  # an interrupted download
    monkeypatch.setenv("NFTEACH_CACHE", str(cache))
    pkg = name.split("_")[0]
    monkeypatch.setattr(fetch.Apt, "show", lambda self, p: {"Filename": f"pool/main/l/linux/{name}",
                                                            "Size": str(info["size"]), "SHA256": info["sha256"]})
    real_run = subprocess.run
    calls = []

    def fake_run(argv, *a, **kw):
        if argv[0] == "apt-get" and "download" in argv:
            calls.append(argv[-1])
            shutil.copy(real_deb, Path(kw["cwd"]) / name)
            return subprocess.CompletedProcess(argv, 0)
        return real_run(argv, *a, **kw)

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    said = []
    apt = fetch.Apt(fetch.KERNELS[kernel])
    paths = apt.download([pkg], debs, progress=said.append)
    assert calls == [pkg], "the truncated .deb was not downloaded again"
    assert paths == [debs / name] and _sha256(debs / name) == info["sha256"]
    assert len(said) == 1 and name in said[0], said
    assert _sha256(real_deb) == info["sha256"], "the real cache changed"


@skip_no_vm
def test_damaged_saved_guest_is_noticed_and_saved_again(tmp_path, real_cache_fingerprint):
    """A byte flipped inside the saved guest's memory stream (its size unchanged): the lab
    does not restore it, saves the guest again in its own cache, and starts."""
    from nfteach.vm import saved

    states = sorted((real_cache() / "kernels" / KERNEL / "saved").glob(f"*/{saved.RECORD}"))
    if not states:
        pytest.skip(f"no saved {KERNEL} guest in {real_cache()} (run `nfteach vm build --kernel {KERNEL}`)")
    rel = str(states[0].parent.relative_to(real_cache()) / saved.STREAM)
    cache = private_cache(tmp_path, KERNEL, copy=[rel])
    stream = cache / rel
    stream.chmod(0o644)
    with open(stream, "r+b") as f:
        f.seek(stream.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    p = _nfteach(cache, "shell", "--backend", "vm", "--kernel", KERNEL, "-c", "uname -r")
    assert p.returncode == 0 and f"\n{KERNEL}." in p.stdout, p.stderr
    assert "damaged (checksum differs)" in p.stderr
    assert "restored from a saved guest" in p.stderr  # `# backend vm, ...` on stderr
    rec = json.loads((stream.parent / saved.RECORD).read_text())
    assert saved._sha256(stream) == rec["stream_sha256"] and not stream.is_symlink()
    assert not _qemus_using(cache)
