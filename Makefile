# Two commands for a fresh clone: `make run` and `make test`. Both set up .venv first (once).
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= cpu,demo,openvino,optuna,ray,server,test
PY := $(VENV)/bin/python
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
ARGS ?=

.PHONY: setup run test test-fast lint format demo-model mlflow-ui mlflow-server serve clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	# An older environment's hydra-joblib-launcher would take hydra/launcher=joblib from ours.
	$(PY) -m pip uninstall --quiet --yes hydra-joblib-launcher 2>/dev/null || true
	touch $@

# Byte-compiles the project first: where PYTHONDONTWRITEBYTECODE is set, no run would, and each
# would compile ~40 modules again (~0.1 s of a ~3 s cached run).
run: setup
	$(PY) -m compileall -q pipeline hydra_plugins
	$(PY) run.py $(ARGS)

# The full suite (what CI runs): lint, format check, every test including sweeps and servers. Test
# files run side by side, one per CPU (pytest-xdist; each file's tests in order on one worker):
# most of a test's time is spent waiting on the processes and servers it starts.
# `make test ARGS="-n0"` runs them one after another.
test: lint
	$(PY) -m pytest -n auto --dist loadfile $(ARGS)

# Daily work: the unit and integration tiers (no CLI, servers or sweeps).
test-fast: lint
	$(PY) -m pytest -n auto --dist loadfile tests/unit tests/integration $(ARGS)

# ruff, the import layers, and types (mypy: [tool.mypy] in pyproject.toml; its cache in .mypy_cache).
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Retrains a committed demo model from its task's demo dataset: assets/demo-model (TASK=multi_class,
# from scratch) or assets/demo-model-<task> (TASK=multi_label|hierarchical|pair, from its encoder).
TASK ?= multi_class
demo-model: setup
	$(PY) -m pipeline.demo.model --task $(TASK)

# The UI over the default SQLite store; it prints the link to the runs table first.
MLFLOW_UI_PORT ?= 5000
mlflow-ui: setup
	$(PY) -m pipeline.tracking link --tracking-uri sqlite:///$(CURDIR)/mlflow.db --ui http://127.0.0.1:$(MLFLOW_UI_PORT)
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port $(MLFLOW_UI_PORT) --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

# A tracking server a team (or a Ray cluster's jobs) shares (pipeline/tracking/server.py): runs in
# a SQLite database in MLFLOW_SERVER_DIR, or in PostgreSQL with MLFLOW_BACKEND_URI=postgresql://...;
# artifacts uploaded through the server into MLFLOW_SERVER_DIR/artifacts. MLFLOW_AUTH=true: accounts,
# the admin's password from MLFLOW_ADMIN_PASSWORD (export it; never on a command line). Bound to
# 127.0.0.1 unless told otherwise: `make mlflow-server MLFLOW_HOST=0.0.0.0` opens it to the network.
# MLFLOW_SERVER_ARGS go to `mlflow server` itself (e.g. --allowed-hosts mlflow.example.com).
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
MLFLOW_SERVER_DIR ?= $(CURDIR)/mlflow-server
MLFLOW_SERVER_ARGS ?=
mlflow-server: setup
	$(PY) -m pipeline.tracking.server --dir "$(MLFLOW_SERVER_DIR)" --host $(MLFLOW_HOST) --port $(MLFLOW_PORT) \
		-- $(MLFLOW_SERVER_ARGS)

# Serves a registered model over HTTP (POST /invocations {"inputs": [...]}) on 127.0.0.1.
#   make serve MODEL=models:/ernie-classifier@champion [SERVE_PORT=5001] [MLFLOW_TRACKING_URI=...]
MODEL ?= models:/ernie-classifier@champion
SERVE_PORT ?= 5001
MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
serve: setup
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH MLFLOW_TRACKING_URI=$(MLFLOW_TRACKING_URI) \
		$(VENV)/bin/mlflow models serve -m "$(MODEL)" --env-manager local --host 127.0.0.1 --port $(SERVE_PORT)

clean:
	rm -rf .cache outputs/runs outputs/sweeps outputs/search .pytest_cache
