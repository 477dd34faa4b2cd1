"""The exercises' answers live in ``instructor/answers/``, not in the attendees' notebooks,
and they are right: notebook 11 runs on sim with the answer checks appended."""
import ast
import runpy
from pathlib import Path

import nbformat
import pytest

from nfteach.tour import course_notebooks

ROOT = Path(__file__).resolve().parents[2]
ANSWERS = ROOT / "instructor" / "answers"
EXERCISES = ROOT / "notebooks" / "11-exercises.ipynb"


def answer_strings():
    ns = runpy.run_path(str(ANSWERS / "11-exercises.py"))
    return {a for per_backend in ns["ANSWERS"].values() for a in per_backend.values() if a}


def _parents(tree):
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _allowed(node, parents) -> bool:
    """``node`` is an item of the choices list (the 2nd argument of ``course.predict(...)``),
    or one branch of ``A if observed else B`` that maps what the lab printed to a choice."""
    lst = parents.get(node)
    if isinstance(lst, ast.IfExp) and node in (lst.body, lst.orelse):
        return True
    call = parents.get(lst)
    return (isinstance(lst, ast.List) and isinstance(call, ast.Call) and len(call.args) > 1
            and call.args[1] is lst and getattr(call.func, "attr", "") == "predict")


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: p.stem)
def test_no_notebook_states_an_exercise_answer(path):
    """An answer may appear as one of a question's choices (or where the experiment maps
    its observation to a choice), nowhere else: no asserted ``q.observed == ...``, no
    explanation that gives it away."""
    answers = answer_strings()
    nb = nbformat.read(str(path), as_version=4)
    for c in nb.cells:
        if c.cell_type != "code" or "%" in c.source.split("\n", 1)[0]:
            continue
        tree = ast.parse(c.source)
        parents = _parents(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in answers and path == EXERCISES:
                assert _allowed(node, parents), f"{path.name}: answer {node.value!r} outside the choices"
        if path == EXERCISES:
            assert "observed ==" not in c.source, f"{path.name} asserts an answer: {c.source[:80]}"
            assert "answers" not in c.source, "the notebook does not load the answers"


def test_answers_are_documented():
    text = (ANSWERS / "11-exercises.md").read_text()
    for a in answer_strings():
        assert f"**{a}" in text, f"11-exercises.md does not give the answer {a!r}"


def test_the_answers_are_right_on_sim(tmp_path):
    """Notebook 11 as committed, plus one cell that runs the instructor's checks, on sim 5.10."""
    from nbclient import NotebookClient

    from nfteach.tour import _env

    nb = nbformat.read(str(EXERCISES), as_version=4)
    assert "lab.close()" not in nb.cells[-1].source, "the learner's lab stays open after Run All"
    nb.cells.append(nbformat.v4.new_code_cell(f"%run -i {ANSWERS / '11-exercises.py'}"))
    with _env("sim", "5.10"):
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(EXERCISES.parent)}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "'q3': '2826'" in out and "'q1': 'no entry'" in out, out

    # the attendees' book leaves the verdicts out; the instructor's keeps them
    from nfteach.book import build
    from nfteach.tour import Step

    nb.cells = nb.cells[:-1]  # without the answers cell
    step = Step(EXERCISES, ok=True, nb=nb)
    build(tmp_path / "attendee", "sim", "5.10", steps=[step])
    build(tmp_path / "instructor", "sim", "5.10", steps=[step], instructor=True)
    attendee = (tmp_path / "attendee" / "11-exercises.html").read_text()
    instructor = (tmp_path / "instructor" / "11-exercises.html").read_text()
    for page in (attendee, instructor):   # predictions are widgets: no verdict until locked in
        assert "the lab says" not in page and "the lab agrees" not in page
        assert "Predict:" in page
