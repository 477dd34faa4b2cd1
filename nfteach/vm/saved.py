"""A saved, booted guest: a new vm lab restores it instead of booting the kernel.

Every lab starts from the same point (the agent up, namespace ``host`` made, the tcp/22
session open), so that point is reached once per kernel and saved:

* ``disk.qcow2``: a qcow2 overlay on the image's raw ``disk.img`` holding what the guest
  wrote while booting; frozen (read-only) once saved;
* ``memory.mig``: QEMU's migration stream of the paused guest (RAM and device state),
  written to a file descriptor passed over QMP (``getfd``, ``migrate fd:``);
* ``state.json``: the key it was made for, the sizes of both files and the stream's
  sha256 (checked in full once per file and user, then by inode, size and mtime).

A lab then runs the same QEMU command (``Qemu.machine_signature``) with
``-incoming fd:N`` reading ``memory.mig`` and ``disk.qcow2`` as its drive with
``snapshot=on``: its writes go to its own temporary overlay in its run directory, on top
of the frozen one, so labs never share a writable disk. After the stream is loaded,
``cont`` runs the guest and the agent's ``resume`` sets what is each lab's own (the wall
clock, fresh randomness for the kernel's CRNG).

The key: kernel, image version and integrity record, QEMU version, guest memory, vCPUs,
accelerator and the command line. A saved state whose key differs, or whose files do not
match their record, is not used: in this user's cache it is rebuilt; a shared read-only
cache (``NFTEACH_SHARED_CACHE``) is used only when its saved state matches (the
instructor's ``nfteach vm build`` makes it), else the user's own cache gets one.
``$NFTEACH_VM_COLD=1`` turns all of this off: every lab boots its kernel.

>>> state = ensure("6.1", qemu_like_the_lab_runs)             # doctest: +SKIP
>>> state.dir.name, sorted(p.name for p in state.dir.iterdir())     # doctest: +SKIP
('3f0c...', ['disk.qcow2', 'memory.mig', 'state.json'])
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .console import Console
from .disk import _sha256
from .fetch import Progress, _say, cache_dir, shared_kernel_dir
from .qemu import Qemu, qemu_binary
from .qmp import Qmp, QmpError

log = logging.getLogger("nfteach.vm")

#: bump when what is saved, or how, changes
FORMAT = "2"
ENV_COLD = "NFTEACH_VM_COLD"
RECORD, STREAM, DISK = "state.json", "memory.mig", "disk.qcow2"


class SavedStateError(RuntimeError):
    """No usable saved state: the lab boots its kernel instead (the message says why)."""


def cold_only() -> bool:
    return os.environ.get(ENV_COLD, "") not in ("", "0")


@lru_cache(maxsize=4)
def _qemu_version(binary: str, mtime: float) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def qemu_version() -> str:
    binary = qemu_binary() or "qemu-system-x86_64"
    try:
        mtime = os.stat(binary).st_mtime
    except OSError:
        mtime = 0.0
    return _qemu_version(binary, mtime)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key(kernel: str, qemu: Qemu, files: Optional[Dict[str, str]] = None) -> dict:
    """What a saved state must have been made for to restore into ``qemu``."""
    img = qemu.image
    try:
        version = (img / "version").read_text().strip()
        integrity = hashlib.sha256((img / "integrity.json").read_bytes()).hexdigest()[:16]
    except OSError:
        version = integrity = "missing"
    return {
        "format": FORMAT, "kernel": kernel, "image": version, "integrity": integrity,
        "qemu": qemu_version(), "memory": str(qemu.memory), "cpus": qemu.cpus,
        "accel": qemu.accel.name,
        "machine": hashlib.sha256(qemu.machine_signature().encode()).hexdigest()[:16],
        "files": text_digest(json.dumps(files or {}, sort_keys=True)),
    }


def key_name(k: dict) -> str:
    return hashlib.sha256(json.dumps(k, sort_keys=True).encode()).hexdigest()[:16]


def own_root(kernel: str) -> Path:
    """Saved states of ``kernel`` in this user's writable cache."""
    return cache_dir() / "kernels" / kernel / "saved"


def roots(kernel: str) -> List[Path]:
    """Where saved states of ``kernel`` are looked for: the shared cache first, then ours."""
    shared = shared_kernel_dir(kernel)
    own = own_root(kernel)
    return ([shared / "saved"] if shared is not None and shared / "saved" != own else []) + [own]


@dataclass(frozen=True)
class SavedState:
    dir: Path
    record: dict

    @property
    def stream(self) -> Path:
        return self.dir / STREAM

    @property
    def disk(self) -> Path:
        return self.dir / DISK

    @property
    def shared(self) -> bool:
        return not str(self.dir).startswith(str(cache_dir()) + os.sep)


def _verified_mark(d: Path) -> Path:
    """Where this user notes that ``d``'s stream was checked whole (its inode, size, mtime)."""
    return cache_dir() / "saved-verified" / hashlib.sha256(str(d).encode()).hexdigest()[:16]


def _identity(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _stream_whole(d: Path, rec: dict) -> bool:
    """The stream's sha256 equals the record's: computed once per file (0.1-0.2 s for
    ~130 MiB), then remembered for that same file (same inode, size and mtime)."""
    mark = _verified_mark(d)
    ident = _identity(d / STREAM)
    try:
        if mark.read_text() == ident:
            return True
    except OSError:
        pass
    if _sha256(d / STREAM) != rec.get("stream_sha256"):
        return False
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(ident)
    except OSError:
        pass
    return True


def check(d: Path, want: dict) -> Tuple[Optional[SavedState], Optional[str]]:
    """The saved state in ``d`` if it was made for key ``want`` and is whole, else why not."""
    try:
        rec = json.loads((d / RECORD).read_text())
    except FileNotFoundError:
        return None, f"no saved state in {d}"
    except (OSError, ValueError):
        return None, f"{d / RECORD} is damaged"
    got = rec.get("key")
    if got != want:
        diff = sorted(k for k in set(want) | set(got or {}) if (got or {}).get(k) != want.get(k))
        return None, f"the saved state in {d} is stale (made for another {', '.join(diff)})"
    for name in (STREAM, DISK):
        p = d / name
        try:
            size = p.stat().st_size
        except OSError:
            return None, f"{p} is missing"
        if size != rec.get("sizes", {}).get(name):
            return None, f"{p} is damaged (size {size}, expected {rec.get('sizes', {}).get(name)})"
    try:
        if not _stream_whole(d, rec):
            return None, f"{d / STREAM} is damaged (checksum differs)"
    except OSError as e:
        return None, f"{d / STREAM} cannot be read ({e.strerror})"
    return SavedState(d, rec), None


def find(kernel: str, want: dict) -> Tuple[Optional[SavedState], List[str]]:
    """The first usable saved state for ``want`` (shared cache first), and the problems seen."""
    problems = []
    name = key_name(want)
    for root in roots(kernel):
        state, problem = check(root / name, want)
        if state is not None:
            return state, problems
        if problem and not problem.startswith("no saved state"):
            problems.append(problem)
    return None, problems


def discard(state: SavedState) -> None:
    """Remove a saved state of ours that failed to restore (never a shared one)."""
    if not state.shared:
        shutil.rmtree(state.dir, ignore_errors=True)


def ensure(kernel: str, make_qemu: Callable[..., Qemu], boot_timeout: float = 300,
           progress: Optional[Progress] = None, force: bool = False,
           files: Optional[Dict[str, str]] = None) -> SavedState:
    """A usable saved state for the guest ``make_qemu()`` describes: found, or made now in
    this user's cache. ``make_qemu(**overrides)`` returns an unstarted ``Qemu`` as the lab
    runs it, with ``disk``/``snapshot`` overridden for the saving boot. ``files`` (path ->
    text) are written into the guest before it is saved: what every lab writes at start."""
    files = files or {}
    want = key(kernel, make_qemu(), files)
    if not force:
        state, problems = find(kernel, want)
        if state is not None:
            return state
        for p in problems:
            log.warning("vm %s: %s; saving the booted guest again", kernel, p)
    root = own_root(kernel)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # one builder per kernel; the others wait, then use it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force:
            state, _ = check(root / key_name(want), want)
            if state is not None:
                return state
        return _save(kernel, root / key_name(want), want, make_qemu, boot_timeout, progress, files)


def _save(kernel: str, out: Path, want: dict, make_qemu, boot_timeout: float,
          progress: Optional[Progress], files: Dict[str, str]) -> SavedState:
    img_tool = shutil.which("qemu-img")
    if not img_tool:
        raise SavedStateError("saving a booted guest needs qemu-img: apt-get install --no-install-recommends qemu-utils")
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.monotonic()
    qemu = make_qemu(disk=tmp / DISK, snapshot=False)
    _say(progress, f"saved guest {kernel}: booting the kernel once to save it ({qemu.accel.name})")
    try:
        backing = qemu.image / "disk.img"
        subprocess.run([img_tool, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(backing.resolve()),
                        str(tmp / DISK)], check=True, capture_output=True, timeout=60)
        qemu.start()
        console = Console(qemu.serial_path, qemu.run_dir / "console.log", qemu.alive)
        try:
            ready = console.wait_ready(boot_timeout)
            for path, text in files.items():
                console.write_file(path, text)
            console.request("ping", timeout=60)  # the agent serves: the lab's starting point
        finally:
            console.close()
        booted = time.monotonic() - t0
        with Qmp(qemu.qmp_paths()[-1]) as q:
            q.execute("stop")
            q.execute("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
            fd = os.open(tmp / STREAM, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                q.execute("getfd", fd=fd, fdname="saved")
            finally:
                os.close(fd)
            q.execute("migrate", uri="fd:saved")
            end = time.monotonic() + 300
            while True:
                st = q.execute("query-migrate")
                if st.get("status") == "completed":
                    break
                if st.get("status") in ("failed", "cancelled") or time.monotonic() > end:
                    raise SavedStateError(f"saving the guest failed: {st.get('error-desc', st.get('status'))}")
                time.sleep(0.02)
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError, QmpError) as e:
        tail = qemu.log_tail()
        qemu.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        raise SavedStateError(f"could not save a booted {kernel} guest ({e}) {tail}".strip()) from None
    qemu.stop()
    rec = {
        "key": want, "release": ready.get("release"),
        "sizes": {name: (tmp / name).stat().st_size for name in (STREAM, DISK)},
        "stream_sha256": _sha256(tmp / STREAM),
        "files": {path: text_digest(text) for path, text in files.items()},
        "boot_seconds": round(booted, 2), "saved_seconds": round(time.monotonic() - t0, 2),
        "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (tmp / RECORD).write_text(json.dumps(rec, indent=1) + "\n")
    for name in (STREAM, DISK, RECORD):
        (tmp / name).chmod(0o444)  # frozen: restored guests only read it
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    _remove_superseded(out.parent, want)
    _say(progress, f"saved guest {kernel}: {rec['sizes'][STREAM] >> 20} MiB in {out} "
                   f"({rec['saved_seconds']:.1f} s)")
    return SavedState(out, rec)


def _remove_superseded(root: Path, want: dict) -> None:
    """Remove saved states this nfteach and QEMU can never use again (another image, QEMU or
    format); states for another guest size or accelerator stay, a lab may still want them."""
    for d in root.iterdir():
        if not d.is_dir() or ".tmp-" in d.name:
            continue
        try:
            got = json.loads((d / RECORD).read_text()).get("key", {})
        except (OSError, ValueError):
            got = {}
        if any(got.get(k) != want[k] for k in ("format", "image", "integrity", "qemu")):
            shutil.rmtree(d, ignore_errors=True)
