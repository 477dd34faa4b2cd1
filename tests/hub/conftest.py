"""A local JupyterHub for the hub tier: the room's own config (deploy/single-machine) with a
test spawner, on 127.0.0.1, in a temp dir; everything it started is stopped by PID."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "single-machine"
NOTEBOOKS = ("00-setup.ipynb", "01-empty-table.ipynb")  # the room's course (test_room.NOTEBOOKS)
START_TIMEOUT = 60


def need(ok: bool, why: str) -> None:
    """Skip locally for a stated reason; in CI a missing prerequisite is a failure."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"hub tier in CI: {why}", pytrace=False)
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> dict[int, str]:
    """PID -> start time of every process below ``pid`` (proxy, servers, kernels)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int(Path(d, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = {}, [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            st = _start_time(c)
            if st is not None:
                out[c] = st
                todo.append(c)
    return out


class Hub:
    def __init__(self, url: str, password: str, homes: Path, proc: subprocess.Popen, log: Path):
        self.url, self.password, self.homes, self.proc, self.log = url, password, homes, proc, log
        self.known: dict[int, str] = {}

    def track(self) -> None:
        """Remember the hub's processes now (proxy, servers, kernels), to stop them later by PID."""
        self.known.update(descendants(self.proc.pid))

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    try:
        import jupyterhub
    except ImportError:
        need(False, "jupyterhub is not installed (pip install 'nfteach[hub]')")
    need(int(jupyterhub.__version__.split(".")[0]) >= 5, f"jupyterhub {jupyterhub.__version__} < 5")
    for mod in ("requests", "websocket", "jupyterhub_idle_culler"):
        try:
            __import__(mod)
        except ImportError:
            need(False, f"python module {mod} is not installed (pip install 'nfteach[hub]')")
    chp = shutil.which("configurable-http-proxy")
    need(chp is not None, "configurable-http-proxy not installed (npm install -g configurable-http-proxy)")

    tmp = tmp_path_factory.mktemp("hub")
    room, homes = tmp / "room", tmp / "home"
    (room / "course").mkdir(parents=True)
    (room / "hub").mkdir()
    (room / "shared").mkdir()
    homes.mkdir()
    for nb in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / nb, room / "course" / nb)
    port, hub_port, api_port = free_port(), free_port(), free_port()
    cfg = tmp / "jupyterhub_config.py"
    cfg.write_text(f"""\
import os, sys
c = get_config()
load_subconfig({str(DEPLOY / "jupyterhub_config.py")!r})
# what differs from a room: no systemd here, every user is this process's user
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(homes)!r} + "/{{username}}"
c.Spawner.cmd = [{str(DEPLOY / "nfteach-singleuser")!r}, sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {["--allow-root"] if os.geteuid() == 0 else []!r}
env = dict(c.Spawner.environment)
env["PATH"] = os.environ["PATH"]
c.Spawner.environment = env
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
""")
    password = secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NFTEACH_", "JUPYTER"))}
    env.update(NFTEACH_ROOM_DIR=str(room), NFTEACH_ROOM_PASSWORD=password, NFTEACH_ROOM_BACKEND="sim",
               NFTEACH_CULL_TIMEOUT="3600", CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16))
    log = tmp / "jupyterhub.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(cfg)], cwd=tmp, env=env,
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    h = Hub(f"http://127.0.0.1:{port}", password, homes, proc, log)
    try:
        import requests

        end = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyterhub exited ({proc.returncode}):\n{h.log_tail()}", pytrace=False)
            try:
                if requests.get(f"{h.url}/hub/api/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > end:
                pytest.fail(f"jupyterhub did not answer within {START_TIMEOUT} s:\n{h.log_tail()}", pytrace=False)
            time.sleep(0.3)
        h.track()
        yield h
    finally:
        h.track()
        _stop(proc, h.known)


def _stop(proc: subprocess.Popen, known: dict[int, str]) -> None:
    """SIGTERM the hub (it stops its proxy, servers and culler), then SIGKILL what is left of
    the processes it had started, by PID (and only if the PID still is that process)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    end = time.monotonic() + 10
    while time.monotonic() < end and any(_start_time(p) == st for p, st in known.items()):
        time.sleep(0.2)
    for pid, st in known.items():
        if _start_time(pid) == st:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
