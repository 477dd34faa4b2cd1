"""Every course notebook as an attendee meets it: JupyterLab in Chromium at 1400×1000 with
the file browser open, Run All, then look.

* no error output;
* no output wider than the notebook's column (no horizontal scrolling anywhere in an
  output: ``scrollWidth`` against ``clientWidth``);
* every prediction is a widget, and before it is locked in nothing shows an answer
  (no verdict, no ✔/✘, no "the lab says");
* one prediction clicked through to its ✔.

Screenshots of every notebook and of each picture and widget go to ``build/screenshots/``
(``$NFTEACH_ARTIFACTS``): look at them.
"""
import json
import re
import shutil

import pytest
from labdriver import (
    artifacts,
    browser,
    close_notebook,
    jupyter_lab,
    need_browser,
    open_notebook,
    run_all,
)

from nfteach.tour import course_notebooks

pytestmark = pytest.mark.browser
NOTEBOOKS = course_notebooks()
#: what the page must not show before a prediction is locked in
ANSWER_SIGNS = ("✔", "✘", "the lab says", "the lab agrees", "No prediction yet")

DONE_JS = """() => {
  const ps = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
  // a hidden (collapsed) input shows no prompt; a queued or running cell shows [*], a fresh one [ ]
  return ps.some(p => /\\[\\d+\\]/.test(p.textContent)) && !ps.some(p => /\\[[ *]\\]/.test(p.textContent));
}"""
WIDE_JS = """() => {
  const out = [];
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  for (const area of panel.querySelectorAll('.jp-OutputArea-output')) {
    const els = [area, ...area.querySelectorAll('*')];
    for (const e of els) {
      const ox = getComputedStyle(e).overflowX;
      if (e !== area && !(ox === 'auto' || ox === 'scroll')) continue;
      if (e.scrollWidth > e.clientWidth + 2)
        out.push({tag: e.tagName, cls: String(e.className).slice(0, 60), scroll: e.scrollWidth,
                  client: e.clientWidth, text: e.textContent.slice(0, 80)});
    }
  }
  return out;
}"""
COLUMN_JS = """() => { const a = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output');
                     return a ? a.clientWidth : 0; }"""


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    need_browser()
    tmp = tmp_path_factory.mktemp("course-in-lab")
    work = tmp / "work"
    work.mkdir()
    for p in NOTEBOOKS:
        shutil.copy(p, work / p.name)
        assert not any(c.get("outputs") for c in json.loads(p.read_text())["cells"]), f"{p.name} has outputs"
    with jupyter_lab(work, tmp, {"NFTEACH_BACKEND": "sim", "NFTEACH_KERNEL": "5.10"}) as (base, token):
        with browser(tmp) as page:
            yield page, base, token, tmp


def _run_notebook(page, base, token, name):
    open_notebook(page, base, token, name)
    run_all(page)
    page.wait_for_function(DONE_JS, timeout=180_000, polling=500)
    page.wait_for_selector("#jp-main-statusbar :text('Idle')", timeout=120_000)
    page.wait_for_timeout(1500)  # widget views render after their output arrives


def _shoot(page, stem):
    shots = artifacts()
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").first
    notebook.evaluate("e => e.scrollTo(0, 0)")
    page.screenshot(path=str(shots / f"{stem}.png"))
    outs = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output:has(svg), "
                        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output:has(.widget-box), "
                        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output:has(table)")
    for i in range(outs.count()):
        o = outs.nth(i)
        o.scroll_into_view_if_needed()
        o.screenshot(path=str(shots / f"{stem}-out{i + 1:02d}.png"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_after_run_all(lab_page, path):
    page, base, token, tmp = lab_page
    name = path.name
    try:
        _run_notebook(page, base, token, name)
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        errors = panel.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        assert errors.count() == 0, f"{name}: error output: {errors.first.text_content()[:500]}"
        wide = page.evaluate(WIDE_JS)
        column = page.evaluate(COLUMN_JS)
        assert not wide, f"{name}: wider than the {column} px column: {wide}"
        # every prediction is a widget, and none gives its answer away before it is locked in
        source = path.read_text()
        asked = len(re.findall(r"course\.predict\(", source))
        widgets = panel.locator(".nfteach-predict")
        assert widgets.count() == asked, f"{name}: {asked} predictions, {widgets.count()} widgets shown"
        for i in range(widgets.count()):
            assert widgets.nth(i).locator(".nfteach-verdict").inner_text().strip() == "", f"{name}: verdict shown"
        shown = panel.inner_text()
        for sign in ANSWER_SIGNS:
            assert sign not in shown, f"{name}: {sign!r} visible before any prediction is locked in"
        _shoot(page, path.stem)
    except Exception:
        page.screenshot(path=str(artifacts() / f"{path.stem}-failure.png"))
        print(f"failure screenshot: {artifacts() / (path.stem + '-failure.png')}; server log: {tmp / 'jupyter.log'}")
        raise
    finally:
        close_notebook(page, base, token)


def test_a_prediction_clicked_to_its_tick(lab_page):
    """Notebook 01's first prediction: a fresh lab's table is empty, so "0" is right."""
    page, base, token, tmp = lab_page
    _run_notebook(page, base, token, "01-empty-table.ipynb")
    w = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .nfteach-predict").first
    w.locator("label", has_text=re.compile(r"^\s*0\s*$")).click()
    w.locator("button.nfteach-lock-in").click()
    verdict = w.locator(".nfteach-verdict")
    verdict.locator("text=✔").wait_for(timeout=30_000)
    assert "flow entries have been shown" in verdict.inner_text()
    assert w.locator("button.nfteach-lock-in").is_disabled()
    w.scroll_into_view_if_needed()
    w.screenshot(path=str(artifacts() / "01-empty-table-locked-in.png"))
