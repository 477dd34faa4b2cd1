"""What the course says in a browser tab (Pyodide), and `nfteach course` copying notebooks."""
import json
import sys

import pytest

from nfteach import backends, introspect
from nfteach.cli import main
from nfteach.model.errors import BackendUnavailable


@pytest.mark.parametrize("name", ["vm", "live"])
def test_backends_that_need_a_machine_explain_themselves_in_a_browser(monkeypatch, name):
    monkeypatch.setattr(backends, "IN_BROWSER", True)
    with pytest.raises(BackendUnavailable) as e:
        backends.get_backend_class(name)
    msg = str(e.value)
    assert "\n" not in msg and "browser tab" in msg and "Binder" in msg and name in msg


def test_sim_still_runs_in_a_browser(monkeypatch):
    monkeypatch.setattr(backends, "IN_BROWSER", True)
    assert backends.get_backend_class("sim").__name__ == "SimBackend"


def test_drgn_explains_itself_in_a_browser(monkeypatch):
    monkeypatch.setattr(introspect, "IN_BROWSER", True)
    monkeypatch.setitem(sys.modules, "drgn", None)  # import drgn fails, as in Pyodide
    with pytest.raises(BackendUnavailable) as e:
        introspect._import_drgn()
    assert "drgn cannot run in a browser tab" in str(e.value) and "Binder" in str(e.value)


def test_sim_import_hint_is_not_nothing():
    assert "nothing" not in backends.REGISTRY["sim"][2]


def test_course_copies_and_keeps_edits(tmp_path, capsys):
    dest = tmp_path / "c"
    assert main(["course", "--no-open", str(dest)]) == 0
    first = capsys.readouterr().out
    nbs = sorted(p.name for p in dest.glob("*.ipynb"))
    assert "01-empty-table.ipynb" in nbs and f"{len(nbs)} notebook(s) copied" in first
    nb = dest / "01-empty-table.ipynb"
    doc = json.loads(nb.read_text())
    doc["cells"][0]["source"] = "mine"
    nb.write_text(json.dumps(doc))
    (dest / "02-netfilter-hooks.ipynb").unlink()
    assert main(["course", "--copy-only", str(dest)]) == 0
    again = capsys.readouterr().out
    assert "1 notebook(s) copied" in again and "kept with your edits (01-empty-table.ipynb)" in again
    assert json.loads(nb.read_text())["cells"][0]["source"] == "mine"


def test_course_into_a_file_is_a_one_line_error(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["course", "--no-open", str(f)]) == 2
    assert capsys.readouterr().err.startswith("nfteach: ")
