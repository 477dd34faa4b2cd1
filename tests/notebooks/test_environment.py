"""environment.yml (conda-forge) and binder/ agree; both install what the notebooks import."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def deps(path: Path):
    """(conda packages, pip packages) of a conda environment file, comments dropped."""
    conda, pip, in_pip, channels = [], [], False, []
    section = None
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not raw.startswith(" "):
            section = line.split(":", 1)[0]
            continue
        m = re.match(r"^(\s*)- (.+)$", line)
        if not m:
            continue
        item = m.group(2).strip()
        if section == "channels":
            channels.append(item)
        elif item == "pip:":
            in_pip = True
        elif in_pip and len(m.group(1)) > 2:
            pip.append(item)
        else:
            in_pip = False
            conda.append(item)
    return channels, conda, pip


def test_binder_matches_environment():
    ch1, conda1, pip1 = deps(ROOT / "environment.yml")
    ch2, conda2, pip2 = deps(ROOT / "binder" / "environment.yml")
    assert ch1 == ch2 == ["conda-forge"]
    assert conda1 == conda2
    assert [p for p in pip1 if p != "-e ."] == pip2
    assert "-e ." in pip1, "environment.yml installs the package from the repo"
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post, "binder installs the package in postBuild"
    first = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))[0].name
    assert f'default_url = "/lab/tree/notebooks/{first}"' in post, "a Binder session opens the first notebook"


def test_environment_has_what_the_notebooks_need():
    _, conda, pip = deps(ROOT / "environment.yml")
    names = {re.split(r"[<>=!]", d)[0] for d in conda + pip}
    for need in ("python-graphviz", "graphviz", "ipywidgets", "ipykernel", "nbclient", "nbformat",
                 "nbconvert", "jupyterlab", "drgn"):
        assert need in names, need


def test_pyproject_notebooks_extra_is_covered():
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r"^notebooks = \[(.*)\]$", text, re.M)
    if not m:
        return
    _, conda, pip = deps(ROOT / "environment.yml")
    names = {re.split(r"[<>=!]", d)[0] for d in conda + pip} | {"graphviz"}
    for dep in re.findall(r'"([^"]+)"', m.group(1)):
        name = re.split(r"[<>=!\[]", dep)[0]
        assert {"graphviz": "python-graphviz"}.get(name, name) in names, dep
