# Two commands for a fresh clone: `make run` and `make test`. Both set up .venv first (once).
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= cpu,demo,ray,test
PY := $(VENV)/bin/python
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
ARGS ?=

.PHONY: setup run test test-fast lint format demo-model mlflow-ui clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

run: setup
	$(PY) run.py $(ARGS)

# The full suite (what CI runs): lint, format check, every test including sweeps and servers.
test: lint
	$(PY) -m pytest $(ARGS)

# Daily work: everything but the tests marked slow.
test-fast: lint
	$(PY) -m pytest -m "not slow" $(ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Retrains the committed demo model (assets/demo-model) from the demo dataset.
demo-model: setup
	$(PY) -m pipeline.demo.model --out assets/demo-model

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

clean:
	rm -rf .cache outputs/runs outputs/sweeps .pytest_cache
