# Two commands for a fresh clone: `make run` and `make test`. Both set up .venv first (once).
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= cpu,test
PY := $(VENV)/bin/python
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
ARGS ?=

.PHONY: setup run test lint demo-model bench mlflow-ui clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

run: setup
	$(PY) run.py $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest $(ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Retrains the committed demo model (assets/demo-model) from the demo dataset.
demo-model: setup
	$(PY) -m pipeline.demo_model --out assets/demo-model

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

clean:
	rm -rf .cache outputs/runs outputs/sweeps .pytest_cache
