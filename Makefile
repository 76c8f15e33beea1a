# Two commands do everything: `make report` and `make test` (see README.md).
# Every target below sets up .venv first when requirements.txt or pyproject.toml changed.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SAMPLE := data/sample/events.parquet
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

.DEFAULT_GOAL := help

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /'

$(INSTALLED): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (journey .venv)" >/dev/null
	@touch $@

## venv: create .venv and install requirements.txt (pinned) and the helpers package
venv: $(INSTALLED)

# The committed sample is used as it is; it is regenerated only when missing.
$(SAMPLE): | $(INSTALLED)
	$(BIN)/python -m helpers.sample --out data/sample

## sample: regenerate the bundled sample in data/sample/ (deterministic, seed 0)
sample: $(INSTALLED)
	$(BIN)/python -m helpers.sample --out data/sample

## report: set up, prepare the sample and execute every notebook into reports/
report: $(INSTALLED) $(SAMPLE)
	$(BIN)/python -m helpers.report run --config config/report.yaml

## readme: rewrite the README's numbers about the sample from the latest report run (after make report)
readme: $(INSTALLED)
	$(BIN)/python -m helpers.report readme

## test: set up and run the whole suite (unit tests, doctests, every notebook with nbval)
test: $(INSTALLED) $(SAMPLE)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 tests src/helpers notebooks

## lab: open JupyterLab with the kernel of .venv
lab: $(INSTALLED) $(SAMPLE)
	$(BIN)/jupyter lab notebooks/

## bench: run the benchmarks (10M events; minutes, several GB of memory)
bench: $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/bench_io.py
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_funnel.py
	$(BIN)/python benchmarks/bench_drivers.py
	$(BIN)/python benchmarks/bench_personas.py
	$(BIN)/python benchmarks/bench_retention.py
	$(BIN)/python benchmarks/bench_identity.py
	$(BIN)/python benchmarks/bench_attribution.py
	$(BIN)/python benchmarks/bench_experiments.py
	$(BIN)/python benchmarks/bench_value.py

## strip: remove outputs from the notebooks before committing
strip: $(INSTALLED)
	$(BIN)/jupyter nbconvert --clear-output --inplace --log-level=WARN $(NOTEBOOKS)

## clean: remove generated data and reports (keeps .venv and the bundled sample)
clean:
	rm -rf data/processed/*.parquet data/interim/*.parquet reports/*/ reports/latest

.PHONY: help venv sample report readme test lab bench strip clean
