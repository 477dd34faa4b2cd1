"""Fixtures for the vm tier: the Debian kernels of ``nfteach.vm.fetch.KERNELS`` booted under QEMU.

Skipped, with the reason, only when there is no ``qemu-system-x86_64`` or when a kernel
is neither cached nor buildable here (no network or no root for debootstrap). In CI
(``CI`` set) a kernel that cannot be prepared is an error, not a skip.
"""
import os
import shutil
import time
from pathlib import Path

import pytest

from nfteach.vm.fetch import KERNELS as _SPECS

KERNELS = tuple(_SPECS)  # 5.10, 6.1, 6.12
_ready = {}


def _prepare(kernel):
    """None if the kernel's image is ready (building it if needed), else why not."""
    if kernel in _ready:
        return _ready[kernel]
    if not shutil.which("qemu-system-x86_64"):
        why = "no qemu-system-x86_64 (apt-get install --no-install-recommends qemu-system-x86)"
    else:
        from nfteach.vm.disk import build_image

        try:
            build_image(kernel)
            why = None
        except Exception as e:  # noqa: BLE001 - turned into a skip reason (or a CI failure)
            why = f"kernel {kernel} is not cached and cannot be fetched/built here: {type(e).__name__}: {e}"
            if os.environ.get("CI"):
                pytest.fail(f"CI must run the vm tier: {why}")
    _ready[kernel] = why
    return why


@pytest.fixture(params=KERNELS)
def kernel(request):
    why = _prepare(request.param)
    if why:
        pytest.skip(why)
    return request.param


@pytest.fixture
def need_kernel():
    """``need_kernel("6.1")`` skips (with the reason) unless that kernel can boot."""

    def need(kernel):
        why = _prepare(kernel)
        if why:
            pytest.skip(why)

    return need


#: every process this test session starts inherits this mark in its environment, so a QEMU
#: left behind is found as ours even after its lab (its parent) is gone, and another
#: session's guests on the same cache (a second test run, a course) are not
SESSION_MARK = f"NFTEACH_TEST_SESSION={os.getpid()}-{time.time_ns()}".encode()
os.environ[SESSION_MARK.split(b"=")[0].decode()] = SESSION_MARK.split(b"=", 1)[1].decode()


def _our_qemus():
    """PIDs of qemu processes using this cache and started by this test session, from /proc."""
    from nfteach.vm.fetch import cache_dir

    root = str(cache_dir())
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
            if not (cmd and b"qemu-system" in cmd[0] and any(root.encode() in a for a in cmd)):
                continue
            env = (p / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if SESSION_MARK in env:
            pids.append(int(p.name))
    return pids


def _ended_or_mine(run: Path) -> bool:
    """A run directory whose lab ended (its owner is gone), or whose lab is this test process."""
    from nfteach.vm.qemu import _owner_alive

    try:
        mine = (run / "owner").read_text().split()[0] == str(os.getpid())
    except (OSError, IndexError):
        mine = False
    return mine or not _owner_alive(run)


@pytest.fixture(scope="session", autouse=True)
def no_orphans():
    """After the whole vm tier: no QEMU of this session left running, no run directory left
    by a lab that ended (another session's running labs on the same cache are theirs)."""
    from nfteach.vm.qemu import runs_dir

    d = runs_dir()
    before = {x.name for x in d.iterdir()} if d.is_dir() else set()
    yield
    left = _our_qemus()
    assert not left, f"orphan qemu processes: {sorted(left)}"
    leftovers = [x.name for x in d.iterdir() if x.name not in before and _ended_or_mine(x)] if d.is_dir() else []
    assert not leftovers, f"run directories left behind: {leftovers}"


@pytest.fixture
def vm_lab(kernel):
    from nfteach.lab import Lab
    from nfteach.vm.backend import VmBackend

    lab = Lab(backend=VmBackend(kernel=kernel))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def conntrack_until():
    """``conntrack_until(lab, word, seconds)``: ``conntrack -L`` until its output holds word (or
    seconds have passed), the last output. A close that ends in TIME_WAIT needs the guest's
    sshd to close its side too: under TCG on a loaded machine that can come after the
    ``nc`` command has returned (CI saw an entry still mid-close)."""
    def wait(lab, word, seconds=30):
        deadline = time.monotonic() + seconds
        while True:
            out = lab.run("sudo conntrack -L").output
            if word in out or time.monotonic() > deadline:
                return out
            time.sleep(0.5)
    return wait
