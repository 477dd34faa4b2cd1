"""A stuck cell is named in the tour's line (CI once showed only ``CellTimeoutError: ---``)."""
import nbformat

from nfteach.tour import run_notebook


def test_timeout_names_the_stuck_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("import time\ntime.sleep(60)"),
                nbformat.v4.new_code_cell("y = 2")]
    path = tmp_path / "00-stuck.ipynb"
    nbformat.write(nb, str(path))
    step = run_notebook(path, "sim", None, timeout=3)
    assert not step.ok
    assert step.error == "code cell 2 did not finish within 3 s: import time", step.error
