"""Helpers of the browser tests: JupyterLab in headless Chromium: Debian's ``chromium`` (``/usr/bin/chromium``) driven by
PyPI ``playwright`` (its driver only: nothing is downloaded). In CI (``CI`` set) a missing
piece is a failure, not a skip. Screenshots go to ``$NFTEACH_ARTIFACTS``, default
``build/screenshots/`` (kept out of git; CI keeps them as artifacts)."""
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("NFTEACH_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
#: what an attendee's screen shows (the file browser open)
VIEWPORT = {"width": 1400, "height": 1000}


def need(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


def need_browser() -> None:
    need(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    for mod in ("jupyterlab", "ipykernel", "ipywidgets", "playwright"):
        try:
            __import__(mod)
        except ImportError:
            need(False, f"Python package {mod} is not installed (pip install {mod})")


def artifacts() -> Path:
    d = Path(os.environ.get("NFTEACH_ARTIFACTS", REPO / "build" / "screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url.split('?')[0]} in {timeout:.0f} s")


@contextlib.contextmanager
def jupyter_lab(work: Path, tmp: Path, env_extra=None):
    """A JupyterLab server on ``work``; yields (base URL, token). Every cell of a notebook
    stays in the page (no windowing), so the test can measure all of them."""
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp / "lab-settings"
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True, exist_ok=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True, exist_ok=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               JUPYTER_CONFIG_DIR=str(tmp / "jconfig"), JUPYTER_RUNTIME_DIR=str(tmp / "jruntime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), IPYTHONDIR=str(tmp / "ipython"), **(env_extra or {}))
    log = open(tmp / "jupyter.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--allow-root", f"--ServerApp.root_dir={work}", f"--IdentityProvider.token={token}",
         "--ServerApp.port_retries=0", "--LabApp.news_url=", "--LabServerApp.extra_labextensions_path=[]"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/api/status?token={token}", proc)
        yield f"http://127.0.0.1:{port}", token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def browser(tmp: Path, viewport=None):
    """A Chromium page (Debian's browser, a fresh profile)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport=viewport or VIEWPORT)
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


def open_notebook(page, base: str, token: str, name: str) -> None:
    """Open ``name`` in JupyterLab and wait for its kernel."""
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell", timeout=90_000)
    # a fresh profile may ask which kernel to use: the notebook's own, python3
    select = page.locator(".jp-Dialog button.jp-mod-accept")
    try:
        select.wait_for(timeout=5_000)
        select.click()
    except Exception:  # noqa: BLE001 - no dialog: the kernel started by itself
        pass
    page.wait_for_selector("#jp-main-statusbar :text('Idle')", timeout=90_000)


def run_all(page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def close_notebook(page, base: str, token: str) -> None:
    """Shut down every kernel of the server (the next notebook opens in a reset workspace)."""
    for sess in page.request.get(f"{base}/api/sessions?token={token}").json():
        page.request.delete(f"{base}/api/sessions/{sess['id']}?token={token}")
