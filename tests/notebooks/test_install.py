"""Without a clone: the wheel, a fresh venv, `pip install "nfteach[course]"`, `nfteach course`.

Builds the wheel of this checkout, installs it with its ``course`` extra in a new venv
(packages come from the configured index), copies the course with ``nfteach course
--no-open`` and runs notebook 01 from the copied folder in that venv's own kernel.
"""
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "01-empty-table.ipynb"

RUN_01 = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print("\\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for c in nb.cells for o in c.get("outputs", [])))
"""


def _pip_works() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not _pip_works():
        pytest.skip("pip is not available to build the wheel")
    tmp = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", REPO],
                   check=True)
    wheel = next((tmp / "dist").glob("nfteach-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", f"{wheel}[course]", "nbclient"], check=True)
    return env_dir, wheel, tmp


def test_wheel_carries_the_notebooks(installed):
    import zipfile

    _, wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(Path(n).name for n in names if n.startswith("nfteach/notebooks/") and n.endswith(".ipynb"))
    assert shipped == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))


def test_course_copies_and_runs_notebook_01(installed):
    env_dir, _, tmp = installed
    bin_ = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run([bin_ / "nfteach", "course", "--no-open"], cwd=tmp,
                         env=env, capture_output=True, text=True, check=True).stdout
    course = tmp / "nfteach-course"
    assert (course / NOTEBOOK).exists(), out
    assert "copied" in out
    # the copy came from the installed package, not from this checkout
    where = subprocess.run([bin_ / "python", "-c", "import nfteach; print(nfteach.__file__)"],
                           cwd=tmp, env=env, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where, where
    # a learner's edit survives a second `nfteach course`
    nb = json.loads((course / NOTEBOOK).read_text())
    nb["cells"][0]["source"] = "# my notes\n" + "".join(nb["cells"][0]["source"])
    (course / NOTEBOOK).write_text(json.dumps(nb))
    again = subprocess.run([bin_ / "nfteach", "course", "--no-open", str(course)], cwd=tmp, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert "kept with your edits" in again and NOTEBOOK in again, again
    assert "# my notes" in (course / NOTEBOOK).read_text()
    # notebook 01 runs from the copied folder in the venv's kernel (its cells assert)
    run = subprocess.run([bin_ / "python", "-c", RUN_01, course / NOTEBOOK, course], cwd=course, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    # the prediction is asked (a widget, no answer), then the session's entry once conntrack is on
    assert "PredictionWidget" in run.stdout, run.stdout[-3000:]
    assert "1 flow entries have been shown" in run.stdout, run.stdout[-3000:]
