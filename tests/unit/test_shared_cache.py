"""A room's read-only kernel cache (NFTEACH_SHARED_CACHE) next to each user's own cache.

No QEMU and no downloads: the kernels and images here are small fake files laid out as
``nfteach vm fetch``/``build`` lay them out. What is checked: a complete shared kernel is
used from the shared cache, booting only reads it, a user never rebuilds it (a clear
error names what the instructor runs), and everything writable stays in NFTEACH_CACHE.
"""
import json
import os
from pathlib import Path

import pytest

from nfteach.vm import disk, fetch, qemu


def _tree(root: Path) -> dict:
    """Every path under ``root`` with its size and mtime: any write shows up here."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _fake_kernel(root: Path, kernel: str = "5.10", image: bool = True, version=None) -> Path:
    kdir = root / "kernels" / kernel
    (kdir / "debug").mkdir(parents=True)
    (kdir / "modules" / "lib" / "modules").mkdir(parents=True)
    (kdir / "vmlinuz").write_bytes(b"kernel")
    (kdir / "debug" / "vmlinux").write_bytes(b"dwarf")
    (kdir / "manifest.json").write_text(json.dumps({"kernel": kernel, "release": "5.10.0-32-cloud-amd64"}))
    if image:
        img = kdir / "image"
        img.mkdir()
        (img / "vmlinuz").write_bytes(b"kernel")
        (img / "initrd.gz").write_bytes(b"initrd")
        (img / "disk.img").write_bytes(b"\0" * 4096)
        disk._write_integrity(img)
        (img / "version").write_text((version or disk.image_version()) + "\n")
    return kdir


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """(user cache, shared cache): NFTEACH_CACHE and NFTEACH_SHARED_CACHE point at temp dirs."""
    user, shared = tmp_path / "home" / ".cache" / "nfteach", tmp_path / "shared"
    user.mkdir(parents=True)
    shared.mkdir()
    monkeypatch.setenv("NFTEACH_CACHE", str(user))
    monkeypatch.setenv("NFTEACH_SHARED_CACHE", str(shared))

    def no_build(*a, **k):
        raise AssertionError("a user must not build anything when the shared cache has the kernel")

    monkeypatch.setattr(disk, "build_rootfs", no_build)
    monkeypatch.setattr(disk, "_initramfs", no_build)
    return user, shared


def test_without_a_shared_cache_everything_is_in_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NFTEACH_CACHE", str(tmp_path))
    monkeypatch.delenv("NFTEACH_SHARED_CACHE", raising=False)
    assert fetch.shared_cache_dir() is None
    assert fetch.kernel_dir("5.10") == tmp_path / "kernels" / "5.10"
    assert disk.image_dir("5.10") == tmp_path / "kernels" / "5.10" / "image"
    assert qemu.runs_dir() == tmp_path / "run"


def test_a_complete_shared_kernel_is_used_from_the_shared_cache(caches):
    user, shared = caches
    kdir = _fake_kernel(shared)
    assert fetch.kernel_dir("5.10") == kdir
    assert disk.image_dir("5.10") == kdir / "image"
    assert fetch.read_manifest("5.10")["release"] == "5.10.0-32-cloud-amd64"
    # a kernel the shared cache does not have is the user's own
    assert fetch.kernel_dir("6.1") == user / "kernels" / "6.1"
    # what is written at run time stays in the user's cache
    assert qemu.runs_dir() == user / "run"


@pytest.mark.parametrize("missing", ["manifest.json", "vmlinuz", "debug/vmlinux"])
def test_an_incomplete_shared_kernel_is_not_used(caches, missing):
    user, shared = caches
    kdir = _fake_kernel(shared)
    (kdir / missing).unlink()
    assert fetch.shared_kernel_dir("5.10") is None
    assert fetch.kernel_dir("5.10") == user / "kernels" / "5.10"


def test_the_instructor_building_the_shared_cache_writes_it(caches, monkeypatch):
    """NFTEACH_CACHE == NFTEACH_SHARED_CACHE: the instructor's own, writable cache."""
    _, shared = caches
    monkeypatch.setenv("NFTEACH_CACHE", str(shared))
    _fake_kernel(shared)
    assert fetch.shared_cache_dir() is None
    assert fetch.kernel_dir("5.10") == shared / "kernels" / "5.10"


def test_fetch_and_build_of_a_shared_kernel_only_read_it(caches):
    user, shared = caches
    kdir = _fake_kernel(shared)
    before = _tree(shared)
    assert fetch.fetch_kernel("5.10") == kdir
    assert disk.build_image("5.10") == kdir / "image"
    assert disk.check_image(kdir / "image") is None
    assert _tree(shared) == before, "nothing may be written into the shared cache"
    assert not (user / "kernels").exists()


def test_the_qemu_command_reads_the_shared_image_and_writes_in_the_users_run_dir(caches):
    user, shared = caches
    kdir = _fake_kernel(shared)
    vm = qemu.Qemu(disk.image_dir("5.10"))
    vm.run_dir = qemu.runs_dir() / "nfteach-5.10-test"
    cmd = vm.command()
    drive = cmd[cmd.index("-drive") + 1]
    assert drive.startswith(f"file={kdir / 'image' / 'disk.img'},") and "snapshot=on" in drive.split(",")
    assert cmd[cmd.index("-kernel") + 1] == str(kdir / "image" / "vmlinuz")
    for i, arg in enumerate(cmd):
        if arg in ("-pidfile", "-serial", "-qmp"):
            assert str(user / "run") in cmd[i + 1], (arg, cmd[i + 1])
            assert str(shared) not in cmd[i + 1]


@pytest.mark.parametrize("damage, says", [
    ("stale", "another nfteach version"),
    ("no image", "no built image"),
    ("truncated disk", "disk.img is damaged"),
    ("initrd changed", "initrd.gz is damaged"),
    ("no integrity", "integrity.json"),
])
def test_a_shared_image_that_is_not_usable_is_never_rebuilt_by_a_user(caches, damage, says):
    _, shared = caches
    kdir = _fake_kernel(shared, image=damage != "no image", version="0123456789abcdef" if damage == "stale" else None)
    img = kdir / "image"
    if damage == "truncated disk":
        (img / "disk.img").write_bytes(b"\0" * 100)
    elif damage == "initrd changed":
        (img / "initrd.gz").write_bytes(b"INITRD")
    elif damage == "no integrity":
        (img / disk.INTEGRITY).unlink()
    before = _tree(shared)
    with pytest.raises(disk.SharedCacheError) as e:
        disk.build_image("5.10")
    msg = str(e.value)
    assert says in msg and "read-only" in msg
    assert f"NFTEACH_CACHE={shared} nfteach vm build --kernel 5.10 --force" in msg
    assert isinstance(e.value, PermissionError)  # the vm backend reports OSErrors as "not ready"
    assert _tree(shared) == before


def test_force_does_not_rebuild_a_shared_image(caches):
    _, shared = caches
    _fake_kernel(shared)
    before = _tree(shared)
    with pytest.raises(disk.SharedCacheError, match="a rebuild was asked for"):
        disk.build_image("5.10", force=True)
    assert _tree(shared) == before


def test_the_vm_backend_boots_the_shared_image_or_says_why_not(caches):
    """VmBackend picks its image through image_dir/build_image (no QEMU started here)."""
    from nfteach.model.errors import BackendUnavailable
    from nfteach.vm.backend import VmBackend

    _, shared = caches
    kdir = _fake_kernel(shared)
    assert VmBackend(kernel="5.10")._image() == kdir / "image"
    assert VmBackend(kernel="5.10", build=False)._image() == kdir / "image"
    (kdir / "image" / "version").write_text("0123456789abcdef\n")
    with pytest.raises(BackendUnavailable, match="instructor rebuilds it"):
        VmBackend(kernel="5.10")._image()
