"""The committed notebooks: no outputs, known tags, hidden sanity checks, thin code cells."""
import re

import nbformat
import pytest

from nfteach.course import ARTICLE
from nfteach.tour import course_notebooks, tags

NOTEBOOKS = course_notebooks()
TAGS = {"sanity-check", "vm-only", "live-only", "exercise"}
EXPECTED = ["00-setup", "01-empty-table", "02-netfilter-hooks", "03-dropped-syn", "04-drgn-hooks",
            "05-bpftrace", "06-function-graph", "07-unconfirmed", "08-who-destroys",
            "09-fooling-conntrack", "10-newer-kernels", "11-exercises"]


def code_cells(path):
    return [c for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code"]


def test_one_notebook_per_step():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_valid_and_no_outputs_committed(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, f"clear the outputs of {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_opens_the_lab_and_shows_the_banner(path):
    first = code_cells(path)[0].source
    assert "course.open_lab()" in first and "course.banner(lab)" in first.splitlines()[-1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_tags(path):
    cells = code_cells(path)
    for c in cells:
        assert set(tags(c)) <= TAGS, (path.name, tags(c))
        if "sanity-check" in tags(c):
            assert c.metadata.get("jupyter", {}).get("source_hidden") is True, "sanity checks are hidden"
            assert "assert" in c.source
        for tag, backend in (("vm-only", "vm"), ("live-only", "live")):
            if tag in tags(c):
                assert c.source.startswith(f'if course.needs(lab, "{backend}"'), \
                    f"a {tag} cell explains itself on other backends"
    assert any("sanity-check" in tags(c) for c in cells), f"{path.name} has no sanity check"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_thin_cells_call_nfteach_never_a_shell(path):
    for c in code_cells(path):
        assert not re.search(r"\bsubprocess\b|os\.system|os\.popen", c.source), c.source
        assert not re.search(r"^\s*[!%]", c.source, re.M), "no shell escapes or magics in committed cells"
        assert len(c.source.splitlines()) <= 30, f"keep cells short: {c.source[:80]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_links_to_the_article_and_exercises(path):
    nb = nbformat.read(str(path), as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert ARTICLE in prose
    assert prose.lstrip().startswith(f"# {path.stem[:2]} ·")
    assert any("exercise" in tags(c) for c in code_cells(path)), "predict, then observe"
