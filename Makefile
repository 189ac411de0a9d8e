# aq-airflow: `make demo` runs the main job on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lock test lint bench demo schema clean

install: $(STAMP)

# The versions CI passed with (requirements.lock), then this checkout on top, editable.
$(STAMP): setup.cfg setup.py pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e ".[airflow,dev,test]"
	touch $(STAMP)

# Refresh the lock from setup.cfg's ranges (users get the ranges; CI and make install the lock).
lock: install
	$(BIN)/uv pip compile setup.py --extra airflow --extra dev --extra test --python-version 3.11 \
		--upgrade -q -o requirements.lock

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check aq_airflow tests bench example_dags
	$(BIN)/ruff format --check aq_airflow tests bench example_dags

bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/execution.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/dag_processor.py

# The main job on the embedded default: seed a DuckDB warehouse with the example project's
# synthetic tables, then run the example pipeline end to end in a real (temporary) Airflow,
# steps as local processes, outputs in .demo/artifacts.
DEMO_SPEC ?= example_dags/churn_scoring.aq.yaml
demo: install
	$(BIN)/aq-airflow validate example_dags
	$(BIN)/python example_dags/seed_warehouse.py .demo/warehouse.duckdb
	$(BIN)/aq-airflow run $(DEMO_SPEC) --date 2026-03-01 --workdir .demo

schema: install
	$(BIN)/aq-airflow init example_dags --shards 1

clean:
	rm -rf $(VENV) .demo bench/out build dist *.egg-info
