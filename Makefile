# aq-airflow: `make demo` runs the main job on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint bench demo schema clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e ".[airflow,dev]"
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check aq_airflow tests bench example_dags
	$(BIN)/ruff format --check aq_airflow tests bench example_dags

bench: install
	$(BIN)/python bench/run.py

# Until the execution issue lands, the demo validates and compiles the example pipelines and
# loads them into a real Airflow DagBag, the way the DAG processor does.
demo: install
	$(BIN)/aq-airflow validate example_dags
	$(BIN)/aq-airflow compile example_dags --out .demo/compiled
	AIRFLOW_HOME=$(CURDIR)/.demo/airflow KUBECONFIG=/dev/null $(BIN)/aq-airflow dagbag example_dags

schema: install
	$(BIN)/aq-airflow init example_dags

clean:
	rm -rf $(VENV) .demo bench/out build dist *.egg-info
