# tfckd_lite: two commands on a fresh machine.
#   make lab    set everything up, then open JupyterLab on notebooks/00_overview.ipynb
#   make test   set everything up, then run the unit tests and every notebook under nbval
# Everything lives in .venv inside the project; nothing is registered outside it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tfckd-installed
# Keep Jupyter, IPython and matplotlib state inside the project's environment.
export JUPYTER_RUNTIME_DIR := $(abspath $(VENV))/share/jupyter/runtime
export IPYTHONDIR          := $(abspath $(VENV))/etc/ipython
export MPLCONFIGDIR        := $(abspath $(VENV))/etc/matplotlib
PYTEST_NOTEBOOKS := --nbval-lax --nbval-current-env --sanitize-with notebooks/sanitize.cfg

.PHONY: setup lab test unit notebooks bench clean help

help:
	@echo "make lab    - set up .venv and open JupyterLab on the overview notebook"
	@echo "make test   - set up .venv and run unit tests + all notebooks (nbval)"
	@echo "make bench  - print model benchmarks for this machine"

# The stamp is rebuilt only when the dependency list changes, so a second run is instant.
# torch is installed first on its own, pinned, so that no dependency can pull a CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet torch==2.13.0 numpy
	$(PY) -m pip install --quiet -e ".[lab,test]"
	@touch $(STAMP)

setup: $(STAMP)

lab: setup
	cd notebooks && ../$(VENV)/bin/jupyter lab 00_overview.ipynb

unit: setup
	$(PY) -m pytest tests

notebooks: setup
	$(PY) -m pytest notebooks $(PYTEST_NOTEBOOKS)

test: setup
	$(PY) -m pytest tests notebooks $(PYTEST_NOTEBOOKS)

bench: setup
	$(PY) bench/bench_models.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
