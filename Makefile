# bgrobust: an executable reproduction of Gupta, Moses & Lu (MLCB 2025).
#
# On a fresh machine (Python >= 3.11 as python3, network access to PyPI):
#     make book      # install, execute the notebooks (PROFILE=demo), build the HTML
#     make test      # install, run the test suite
#     make lab       # install the lab extra too and open the chapters in JupyterLab
#
# Variables: PROFILE=ci|demo|paper, NB="01_dataset ..." (only these notebooks),
# ARGS="..." (passed on to the runner / pytest / the benchmarks), VENV=.venv.

VENV    ?= .venv
PROFILE ?= demo
PYTHON  ?= python3
NB      ?=
ARGS    ?=

PY      := $(VENV)/bin/python
JB      := $(VENV)/bin/jupyter-book
STAMP   := $(VENV)/.installed
LAB_STAMP := $(VENV)/.installed-lab

.DEFAULT_GOAL := help
.PHONY: help install notebooks book test bench lab clean distclean

help:
	@echo "make book      execute the notebooks (PROFILE=$(PROFILE)) and build the HTML book"
	@echo "make test      run the test suite"
	@echo "make notebooks execute the notebooks only (NB=01_dataset for one, ARGS=... for the runner)"
	@echo "make bench     run benchmarks/run_all.py"
	@echo "make lab       open the chapters (notebooks/*.md) in JupyterLab; each runs the demo as it stands"
	@echo "make install   create $(VENV) and install the project (done by the targets above)"
	@echo "make clean     remove the built book and the executed notebooks"
	@echo "make distclean also remove runs/ and $(VENV)"

# Re-install only when the requirements change; a second `make test` starts at once.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -c constraints.txt -e ".[book,test]"
	touch $@

install: $(STAMP)

notebooks: $(STAMP)
	$(PY) -m bgrobust.runbook --profile $(PROFILE) $(if $(strip $(NB)),--only $(NB)) $(ARGS)

book: notebooks
	$(JB) build . -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

# JupyterLab with jupytext: a double-click on notebooks/NN_name.md opens it as a notebook
# (paired with a git-ignored notebooks/NN_name.ipynb, see jupytext.toml); its parameters
# cell holds the demo profile's values.  ARGS go to `jupyter lab` (e.g. ARGS=--no-browser).
$(LAB_STAMP): $(STAMP) pyproject.toml constraints.txt postBuild
	$(PY) -m pip install -q -c constraints.txt -e ".[book,test,lab]"
	PYTHON=$(PY) bash postBuild --settings-only
	touch $@

# The kernels get the runner's environment defaults (bgrobust.runbook.KERNEL_ENV_DEFAULTS: OpenMP
# waiting, glibc's heap kept), unless the caller's environment sets them.
KERNEL_DEFAULTS = $(PY) -c "import os; from bgrobust.runbook import KERNEL_ENV_DEFAULTS as d; print(' '.join(f'{k}={os.environ.get(k, v)}' for k, v in d.items()))"

lab: $(LAB_STAMP)
	env $$($(KERNEL_DEFAULTS)) $(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks $(ARGS)

bench: $(STAMP)
	@test -f benchmarks/run_all.py || { echo "benchmarks/run_all.py does not exist (yet)" >&2; exit 1; }
	$(PY) benchmarks/run_all.py $(ARGS)

clean:
	rm -rf _build book/*.ipynb book/figures

distclean: clean
	rm -rf runs $(VENV)
