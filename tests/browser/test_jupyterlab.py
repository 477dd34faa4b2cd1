"""The widgets clicked in a real browser: JupyterLab in headless Chromium (see labdriver.py).

A prediction locked in to its ✔, the hook picture, and the packet widget sent: the
screenshot of this page is README's (``build/screenshots/readme.png``; copy it to
``docs/img/course-widgets.png`` when the course's look changes).
"""
import json
import shutil
from pathlib import Path

import pytest
from labdriver import artifacts, browser, jupyter_lab, need_browser, open_notebook, run_all

pytestmark = pytest.mark.browser
NOTEBOOK = Path(__file__).parent / "notebooks" / "packet_widget.ipynb"
#: README's picture: narrower than an attendee's screen, tall enough for all three
README_VIEW = {"width": 1100, "height": 2300}


def test_prediction_picture_and_packet_widget(tmp_path):
    need_browser()
    assert not any(c.get("outputs") for c in json.loads(NOTEBOOK.read_text())["cells"]), \
        "the committed test notebook must have no outputs"
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    shots = artifacts()
    with jupyter_lab(work, tmp_path) as (base, token), browser(tmp_path, README_VIEW) as page:
        try:
            open_notebook(page, base, token, NOTEBOOK.name)
            page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()  # fold the file browser
            run_all(page)
            page.locator(".jp-OutputArea-output", has_text="NFTEACH-NOTEBOOK-READY").wait_for(timeout=120_000)
            # the prediction: nothing shown until locked in, then ✔ and the evidence
            w = page.locator(".nfteach-predict").first
            assert w.locator(".nfteach-verdict").inner_text().strip() == ""
            w.locator("label", has_text="conntrack's confirm callback").click()
            w.locator("button.nfteach-lock-in").click()
            w.locator(".nfteach-verdict", has_text="✔").wait_for(timeout=30_000)
            assert "2147483647 → ipv4_confirm, nft_do_chain_ipv4" in w.locator(".nfteach-verdict").inner_text()
            # the picture: the nft chain next to conntrack's confirm, both outlined
            pic = page.locator(".nfteach-fit svg").first
            assert "nft_do_chain_ipv4" in pic.text_content() and "ipv4_confirm" in pic.text_content()
            # the packet widget draws nothing before the click, then the path and the fate
            send = page.locator("button.nfteach-send")
            assert page.locator(".widget-html svg").count() == 0
            send.click()
            page.locator(".widget-html svg text", has_text="dropped").first.wait_for(timeout=30_000)
            text = page.locator(".widget-html svg").first.text_content()
            assert "nft_do_chain_ipv4" in text and "ipv4_confirm" in text and "SYN_SENT" in text
            assert "dropped on vm" in page.locator(".nfteach-fate").first.text_content()
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").first.evaluate(
                "e => e.scrollTo(0, 0)")
            page.screenshot(path=str(shots / "readme.png"))
            print(f"screenshot: {shots / 'readme.png'}")
        except Exception:
            page.screenshot(path=str(shots / "jupyterlab-failure.png"), full_page=True)
            print(f"failure screenshot: {shots / 'jupyterlab-failure.png'}; server log: {tmp_path / 'jupyter.log'}")
            raise
