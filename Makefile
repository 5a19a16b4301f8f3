# The two commands of the README:
#   make demo   set up a virtualenv and run the end-to-end demo on the embedded default
#   make test   set up a virtualenv and run lint, types, layers and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Apache Airflow for the export test, in a virtualenv of its own (its pins are its own).
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_REQUIREMENTS := tests/integration/export/airflow-requirements.txt
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
# The kserve wheel, read (never installed) by the KServe manifest test.
KSERVE_VERSION := 0.21.0
KSERVE_WHEELS := $(VENV)/kserve-wheels
KSERVE_STAMP := $(KSERVE_WHEELS)/.downloaded

.PHONY: setup demo test lint typecheck layers pytest bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev,torch]"
	touch $(STAMP)

$(AIRFLOW_STAMP): $(AIRFLOW_REQUIREMENTS)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r $(AIRFLOW_REQUIREMENTS)
	touch $(AIRFLOW_STAMP)

$(KSERVE_STAMP): $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary :all: -d $(KSERVE_WHEELS) kserve==$(KSERVE_VERSION)
	touch $(KSERVE_STAMP)

demo: setup
	$(BIN)/conveyor demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

layers: setup
	$(BIN)/lint-imports

pytest: setup $(AIRFLOW_STAMP) $(KSERVE_STAMP)
	CONVEYOR_TEST_AIRFLOW=$(abspath $(AIRFLOW_VENV))/bin/airflow \
	CONVEYOR_TEST_KSERVE_WHEELS=$(abspath $(KSERVE_WHEELS)) \
	$(BIN)/python -m pytest -p no:cacheprovider

test: lint typecheck layers pytest

bench: setup
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) .conveyor demo-project
