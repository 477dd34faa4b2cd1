# nfteach — common tasks. `make setup` then `make course`; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup course article test test-sim doctest lint clean book tour bench lite fidelity

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

setup: $(PY)
	$(PY) -m pip install -q -e '.[test,live,drgn,widgets,notebooks,hub,lite]'

# The course on the default backend (the simulator): JupyterLab on the first notebook.
course: setup
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00-setup.ipynb

# The article's sequence as a transcript, on the simulator.
article: setup
	$(VENV)/bin/nfteach shell nfteach/scenarios/article.lab

test: setup doctest
	$(PY) -m pytest -ra -q

# The examples in the package's docstrings (nfteach/tools/ holds drgn scripts, not modules).
doctest: setup
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules nfteach --ignore=nfteach/tools

test-sim: setup
	$(PY) -m pytest -ra -q tests/unit tests/contract -m "not live and not vm"

lint: setup
	$(VENV)/bin/ruff check nfteach tests bench

# The executed course as a static HTML site (build/book/index.html).
book: setup
	$(PY) -m nfteach.book --out build/book

# The whole course headless, one line per step (NFTEACH_BACKEND / --backend to change).
tour: setup
	$(VENV)/bin/nfteach tour

# The course as a JupyterLite site (build/lite/): runs in a browser tab, any static host serves it.
lite: setup
	$(PY) deploy/lite/build.py --out build/lite

# Benchmarks: one table, and bench/results.json.
bench: setup
	$(PY) bench/run.py

# The differential tier, longer: random scripts on sim vs vm 5.10/6.1 and live 6.18.
FIDELITY_SCRIPTS ?= 200
fidelity: setup
	FIDELITY_SCRIPTS=$(FIDELITY_SCRIPTS) $(PY) -m pytest -ra -q -s tests/fidelity

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
