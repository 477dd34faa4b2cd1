"""The real thing: JupyterLab in headless Chromium, the packet widget clicked by a browser.

Needs Debian's ``chromium`` (``/usr/bin/chromium``), PyPI ``jupyterlab``, ``ipywidgets`` and
``playwright`` (its driver only: the browser is Debian's, nothing is downloaded). In CI
(``CI`` set) a missing piece is a failure, not a skip. The screenshot goes to
``$NFTEACH_ARTIFACTS`` or ``artifacts/browser/`` in the repository.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = Path(__file__).parent / "notebooks" / "packet_widget.ipynb"
CHROMIUM = os.environ.get("NFTEACH_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def _need(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


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


@pytest.fixture
def jupyter(tmp_path):
    _need(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    for mod in ("jupyterlab", "ipykernel", "ipywidgets", "playwright"):
        try:
            __import__(mod)
        except ImportError:
            _need(False, f"Python package {mod} is not installed (pip install {mod})")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    assert not any(c.get("outputs") for c in json.loads(NOTEBOOK.read_text())["cells"]), \
        "the committed test notebook must have no outputs"
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               JUPYTER_CONFIG_DIR=str(tmp_path / "jconfig"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jruntime"),
               IPYTHONDIR=str(tmp_path / "ipython"))
    log = open(tmp_path / "jupyter.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--allow-root", f"--ServerApp.root_dir={work}", f"--IdentityProvider.token={token}",
         "--ServerApp.port_retries=0", "--LabApp.news_url=", "--LabServerApp.extra_labextensions_path=[]"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/api/status?token={token}", proc)
        yield f"http://127.0.0.1:{port}", token, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_packet_widget_shows_the_drop(jupyter):
    from playwright.sync_api import sync_playwright

    base, token, tmp = jupyter
    artifacts = Path(os.environ.get("NFTEACH_ARTIFACTS", REPO / "artifacts" / "browser"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "jupyterlab-packet-widget.png"
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1800})
        try:
            page = ctx.new_page()
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            # a fresh profile may ask which kernel to use: the notebook's own, python3
            select = page.locator(".jp-Dialog button.jp-mod-accept")
            try:
                select.wait_for(timeout=10_000)
                select.click()
            except Exception:  # noqa: BLE001 - no dialog: the kernel started by itself
                pass
            page.wait_for_selector("#jp-main-statusbar :text('Idle')", timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            page.locator(".jp-OutputArea-output", has_text="NFTEACH-NOTEBOOK-READY").wait_for(timeout=120_000)
            # the %%lab cell drew the hook chain: the nft chain next to conntrack's confirm
            assert page.locator(".nfteach-hooks svg").count() == 1
            send = page.locator("button.nfteach-send")
            send.wait_for(timeout=60_000)
            assert page.locator(".widget-html svg").count() == 0  # nothing drawn before the click
            send.click()
            svg = page.locator(".widget-html svg").first
            svg.wait_for(timeout=60_000)
            page.locator(".widget-html svg text", has_text="dropped").first.wait_for(timeout=30_000)
            text = svg.text_content()
            assert "nft_do_chain_ipv4" in text and "dropped" in text and "ipv4_confirm" in text
            assert "SYN_SENT" in text
            assert "dropped on vm" in page.locator(".nfteach-fate").first.text_content()
            svg.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        except Exception:
            page.screenshot(path=str(artifacts / "jupyterlab-failure.png"), full_page=True)
            print(f"failure screenshot: {artifacts / 'jupyterlab-failure.png'}; "
                  f"server log: {tmp / 'jupyter.log'}")
            raise
        finally:
            ctx.close()
