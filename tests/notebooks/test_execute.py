"""Every notebook runs top to bottom on sim 5.10; the sanity checks ran; the course is quick."""
import os

import pytest

from nfteach.tour import SANITY, course_notebooks, tags

NOTEBOOKS = course_notebooks()
# whole course on sim: measured 14-21 s on an idle 2-core machine, 37 s while QEMU guests ran
BUDGET_S = float(os.environ.get("NFTEACH_COURSE_BUDGET", "60"))


def outputs_text(cell):
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", "") or o.get("data", {}).get("text/plain", "") or o.get("evalue", ""))
    return "".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_sim(course_run, path):
    steps, _ = course_run
    step = {s.path.name: s for s in steps}[path.name]
    assert step.ok, step.line()
    assert step.sanity_ran == step.sanity > 0, step.line()
    code = [c for c in step.nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert "backend sim, kernel profile 5.10" in outputs_text(code[0]), "the first output names the backend"
    for c in code:
        if SANITY in tags(c):
            assert not any(o.get("output_type") == "error" for o in c.get("outputs", []))


def test_tagged_cells_explain_themselves_on_sim(course_run):
    steps, _ = course_run
    explained = 0
    for s in steps:
        for c in s.nb.cells:
            if {"vm-only", "live-only"} & set(tags(c)):
                assert "This cell needs the" in outputs_text(c), outputs_text(c)
                explained += 1
    assert explained >= 4


def test_whole_course_within_budget(course_run):
    steps, seconds = course_run
    assert seconds <= BUDGET_S, f"course took {seconds:.1f} s on sim: " + "; ".join(s.line() for s in steps)


def test_tour_prints_one_line_per_notebook(tmp_path, capsys):
    import shutil

    from nfteach.tour import main

    for p in NOTEBOOKS[:2]:
        shutil.copy(p, tmp_path / p.name)
    assert main(["--notebooks", str(tmp_path), "--backend", "sim", "--kernel", "6.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# nfteach tour: 2 notebooks on backend sim, kernel 6.1"
    assert [ln.split()[1] for ln in lines[1:3]] == [p.stem for p in NOTEBOOKS[:2]]
    assert all(ln.startswith("✔ ") for ln in lines[1:3]) and lines[-1].startswith("# 2/2 notebooks ok")
