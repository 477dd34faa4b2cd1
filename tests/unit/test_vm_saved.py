"""The vm backend's accelerator choice and saved guests, without QEMU: fake cpuinfo text, fake
/dev/kvm states, fake saved-state directories laid out as ``nfteach/vm/saved.py`` writes them."""
import json
import os
from pathlib import Path

import pytest

from nfteach.vm import accel, qemu, saved
from nfteach.vm.accel import Accel, choose

INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr vmx ssse3 sse4_2\n"
AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme de pse tsc msr svm sse4a\n"
# a guest of a paravirtual KVM (this project's dev machine): /dev/kvm exists, no vmx/svm
PV_GUEST = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme de pse tsc msr hypervisor sse4a\n"
TCG = Accel("tcg", "test")


@pytest.mark.parametrize("cpuinfo, usable, want", [
    (INTEL, True, "kvm"),
    (AMD, True, "kvm"),
    (PV_GUEST, True, "tcg"),
    (INTEL, "there is no /dev/kvm", "tcg"),
    (AMD, "/dev/kvm cannot be opened read-write (Permission denied)", "tcg"),
    ("", True, "tcg"),
])
def test_kvm_only_with_a_usable_device_and_hardware_flags(cpuinfo, usable, want):
    a = choose(cpuinfo, usable)
    assert a.name == want
    assert a.args == (["-accel", "kvm"] if want == "kvm" else ["-accel", "tcg,thread=single"])
    assert a.why and "\n" not in a.why


def test_why_names_what_is_missing():
    assert "neither vmx nor svm" in choose(PV_GUEST, True).why
    assert choose(INTEL, "there is no /dev/kvm").why == "there is no /dev/kvm"
    assert "svm" in choose(AMD, True).why and "KVM" in choose(AMD, True).describe()


def test_override():
    assert choose(INTEL, True, override="tcg").name == "tcg"
    assert choose(AMD, True, override="kvm").name == "kvm"
    with pytest.raises(ValueError, match="neither vmx nor svm"):
        choose(PV_GUEST, True, override="kvm")
    with pytest.raises(ValueError, match="no /dev/kvm"):
        choose(INTEL, "there is no /dev/kvm", override="kvm")


def test_kvm_usable_reads_the_device(tmp_path):
    dev = tmp_path / "kvm"
    assert "there is no" in accel.kvm_usable(str(dev))
    dev.write_bytes(b"")
    assert accel.kvm_usable(str(dev)) is None
    d = tmp_path / "dir"
    d.mkdir()
    assert "cannot be opened read-write" in accel.kvm_usable(str(d))


def test_detect_honours_the_environment(monkeypatch):
    monkeypatch.setenv(accel.ENV_ACCEL, "tcg")
    assert accel.detect().name == "tcg"
    monkeypatch.setenv(accel.ENV_ACCEL, "fast")
    with pytest.raises(ValueError, match="tcg or kvm"):
        accel.detect()


def _img(tmp_path: Path) -> Path:
    img = tmp_path / "image"
    img.mkdir()
    for name in ("vmlinuz", "initrd.gz", "disk.img"):
        (img / name).write_bytes(name.encode())
    (img / "version").write_text("v1\n")
    (img / "integrity.json").write_text("{}\n")
    return img


def test_saved_and_restored_guests_run_the_same_machine(tmp_path):
    img = _img(tmp_path)
    cold = qemu.Qemu(img, accel=TCG)
    cold.run_dir = tmp_path / "run-a"
    saving = qemu.Qemu(img, accel=TCG, disk=tmp_path / "s1" / "disk.qcow2", snapshot=False)
    saving.run_dir = tmp_path / "run-c"
    restored = qemu.Qemu(img, accel=TCG, disk=tmp_path / "s2" / "disk.qcow2", incoming=tmp_path / "s2" / "m")
    restored.run_dir = tmp_path / "run-b"
    assert saving.machine_signature() == restored.machine_signature()
    assert "-incoming" not in restored.command() and "-nic" in restored.command()
    drive = restored.command()[restored.command().index("-drive") + 1]
    assert drive.endswith("format=qcow2,if=virtio,snapshot=on")
    assert "snapshot=on" not in saving.command()[saving.command().index("-drive") + 1]
    assert qemu.Qemu(img, accel=TCG, memory="768").machine_signature() != cold.machine_signature()
    assert qemu.Qemu(img, accel=Accel("kvm", "t")).machine_signature() != cold.machine_signature()
    assert restored.run_dir == tmp_path / "run-b", "the signature leaves the run directory as it was"


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A fake saved state in a temp NFTEACH_CACHE, and the key it was made for."""
    monkeypatch.setenv("NFTEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NFTEACH_SHARED_CACHE", raising=False)
    monkeypatch.setattr(saved, "qemu_version", lambda: "QEMU emulator version 7.2.0")
    img = _img(tmp_path)
    want = saved.key("5.10", qemu.Qemu(img, accel=TCG), {"/vagrant/tools/x.bt": "x"})
    d = saved.own_root("5.10") / saved.key_name(want)
    d.mkdir(parents=True)
    (d / saved.STREAM).write_bytes(os.urandom(3 << 20))
    (d / saved.DISK).write_bytes(b"qcow2")
    rec = {"key": want, "sizes": {n: (d / n).stat().st_size for n in (saved.STREAM, saved.DISK)},
           "stream_sha256": saved._sha256(d / saved.STREAM)}
    (d / saved.RECORD).write_text(json.dumps(rec))
    return img, want, d


def test_a_matching_saved_state_is_found(state):
    img, want, d = state
    found, problems = saved.find("5.10", want)
    assert found is not None and found.dir == d and not problems and not found.shared


@pytest.mark.parametrize("change", ["memory", "accel", "qemu", "image", "files"])
def test_a_stale_saved_state_is_not_used(state, change):
    img, want, d = state
    other = dict(want, **{change: "other"})
    found, problems = saved.find("5.10", other)
    assert found is None  # another key: another directory
    found, problem = saved.check(d, other)
    assert found is None and "stale" in problem and change in problem


@pytest.mark.parametrize("damage, says", [
    (lambda d: (d / saved.STREAM).write_bytes(b"short"), "size"),
    (lambda d: (d / saved.DISK).unlink(), "missing"),
    (lambda d: (d / saved.RECORD).write_text("{"), "damaged"),
])
def test_a_damaged_saved_state_is_named(state, damage, says):
    img, want, d = state
    damage(d)
    found, problems = saved.find("5.10", want)
    assert found is None and len(problems) == 1 and says in problems[0]


def test_a_flipped_byte_in_the_stream_is_noticed(state):
    img, want, d = state
    assert saved.check(d, want)[0] is not None  # checked whole once, remembered
    data = bytearray((d / saved.STREAM).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / saved.STREAM).write_bytes(bytes(data))  # a new mtime: checked whole again
    found, problem = saved.check(d, want)
    assert found is None and "checksum" in problem


def test_the_shared_cache_is_looked_at_first(state, tmp_path, monkeypatch):
    img, want, d = state
    shared = tmp_path / "shared"
    kdir = shared / "kernels" / "5.10"
    for f in ("manifest.json", "vmlinuz", "debug/vmlinux"):
        (kdir / f).parent.mkdir(parents=True, exist_ok=True)
        (kdir / f).write_text("x")
    (kdir / "modules").mkdir()
    monkeypatch.setenv("NFTEACH_SHARED_CACHE", str(shared))
    assert saved.roots("5.10") == [kdir / "saved", saved.own_root("5.10")]
    shared_state = kdir / "saved" / d.name
    shared_state.parent.mkdir()
    os.rename(d, shared_state)
    found, _ = saved.find("5.10", want)
    assert found.dir == shared_state and found.shared


def test_cold_only(monkeypatch):
    monkeypatch.setenv(saved.ENV_COLD, "1")
    assert saved.cold_only()
    monkeypatch.setenv(saved.ENV_COLD, "0")
    assert not saved.cold_only()
