# aq-airflow: `make demo` runs the main job on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Azurite (npm), the Azure Blob Storage emulator the object-store tests start
EMULATORS := tests/emulators
EMULATORS_STAMP := $(EMULATORS)/node_modules/.installed

.PHONY: install java model-server lock test test-fast lint bench fuzz demo demo-ui schema clean

install: $(STAMP) $(EMULATORS_STAMP) java model-server

# PySpark (spark: steps, in local mode on this machine) runs on a JVM, which its wheel does not
# bring: Debian's headless JDK when there is no `java` (apt-get, as root or through sudo);
# elsewhere install a JDK 17 or 21 yourself (brew install openjdk@17, ...) or set JAVA_HOME.
java:
	@if ! command -v java >/dev/null 2>&1 && [ -z "$$JAVA_HOME" ]; then \
		if command -v apt-get >/dev/null 2>&1; then \
			SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
			{ $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				default-jdk-headless >/dev/null; } || echo "could not install default-jdk-headless: spark steps need a JDK"; \
		else \
			echo "no java: spark steps need a JDK 17 or 21 (install one, or set JAVA_HOME)"; \
		fi; \
	fi

# The versions CI passed with (requirements.lock), then this checkout on top, editable. uv (the
# lock's version, from PyPI through pip) installs them: it downloads and installs in parallel, where
# pip takes minutes for the lock's ~240 packages.
$(STAMP): setup.cfg setup.py pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "$$(grep -m1 '^uv==' requirements.lock)"
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e ".[airflow,dev,test,spark,ray]"
	touch $(STAMP)

# The model server venv (MLServer and its runtimes, apart from Airflow's: serving.model_server),
# built from aq_airflow/serving/model-server.lock at a cache folder named by the lock's hash, so the
# serve tasks, `aq-airflow serve` and the tests find it ready (a no-op once built).
model-server: $(STAMP)
	$(BIN)/python -c "from aq_airflow.serving.model_server import server_python; server_python()"

# The emulators at the versions of their package-lock.json. Without npm this is left out (with a
# note) and the Azure tests skip, except under AQ_REQUIRE_SERVICES=1 (CI), where they fail.
$(EMULATORS_STAMP): $(EMULATORS)/package.json $(EMULATORS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(EMULATORS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "npm not found: Azurite (tests/emulators) not installed, the Azure artifact tests will skip"; \
	fi

# Refresh the lock from setup.cfg's ranges (users get the ranges; CI and make install the lock).
lock: install
	$(BIN)/uv pip compile setup.py --extra airflow --extra dev --extra test --extra spark --extra ray --python-version 3.11 \
		--upgrade -q -o requirements.lock
	$(BIN)/uv pip compile aq_airflow/serving/model-server.in --python-version 3.11 --generate-hashes --upgrade -q \
		-o aq_airflow/serving/model-server.lock

# The suite on TEST_WORKERS processes (pytest-xdist), a test file per worker at a time, the
# heaviest files first and the deployment tests' two executors on two workers (tests/scheduling.py):
# most of its time is spent waiting on the Airflow, emulator and step processes it starts, so a
# worker more than the cores keeps them busy. Each worker has its own Airflow home and metadata DB,
# ports and Redis database (tests/ports.py); the wheel and its venvs are built once and shared.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
# (the 25 longest tests are listed at the end: where the next minutes of CI are)
test: install
	$(PYTEST) --durations=25

# The edit loop: all but the deployment, UI, browser, wheel and slow tests (markers: pyproject.toml)
test-fast: install
	$(PYTEST) -m "not (deployment or ui or browser or wheel or slow)"

lint: install
	$(BIN)/ruff check aq_airflow tests bench example_dags
	$(BIN)/ruff format --check aq_airflow tests bench example_dags

bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/execution.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/dag_processor.py
	$(BIN)/python bench/ui.py
	$(BIN)/python bench/foreach.py
	$(BIN)/python bench/results_cli.py
	$(BIN)/python bench/run_overhead.py
	$(BIN)/python bench/code_package.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/ray_step.py
	$(BIN)/python bench/spark_step.py

# The fuzz campaign (minutes; not part of `make test`, which runs a 300-spec smoke run of it):
# mutated and generated specs through validate, compile and the loader; a summary table, exit 1
# on any uncaught exception, traceback or unlocated error; then mutated step manifests and files
# fed to the readers (each refused with BadOutput or read as committed, never another exception).
# FUZZ_SPECS=N FUZZ_SEED=S to vary it.
FUZZ_SPECS ?= 10000
FUZZ_SEED ?= 20260301
fuzz: install
	$(BIN)/python -m tests.fuzzing --specs $(FUZZ_SPECS) --seed $(FUZZ_SEED)

# The main job on the embedded default: seed a DuckDB warehouse with the example project's
# synthetic tables, then run the example pipeline end to end in a real (temporary) Airflow,
# steps as local processes, outputs in .demo/artifacts.
DEMO_SPEC ?= example_dags/churn_scoring.aq.yaml
demo: install
	$(BIN)/aq-airflow validate example_dags
	$(BIN)/python example_dags/seed_warehouse.py .demo/warehouse.duckdb
	$(BIN)/aq-airflow run $(DEMO_SPEC) --date 2026-03-01 --workdir .demo

# The quality UI on the demo: `aq-airflow demo-ui` runs the example pipeline for DEMO_UI_DAYS
# consecutive dates (dag.test in a kept Airflow home, .demo/ui, SQLite; dates already run are
# skipped; one date with min_rows 6000, so a check fails), results in .demo/warehouse.duckdb, then
# `airflow api-server` with the aq plugin on 127.0.0.1 (8080 if free) in the foreground. Prints the
# login and the pipeline's Quality page; opens nothing. Ctrl-C stops.
DEMO_UI_DAYS ?= 10
demo-ui: install
	$(BIN)/python example_dags/seed_warehouse.py .demo/warehouse.duckdb
	$(BIN)/aq-airflow demo-ui $(DEMO_SPEC) --workdir .demo --first-date 2026-02-20 --days $(DEMO_UI_DAYS) \
		--conf '2026-02-27={"min_rows": 6000}'

schema: install
	$(BIN)/aq-airflow init example_dags --shards 1

clean:
	rm -rf $(VENV) .demo bench/out build dist *.egg-info $(EMULATORS)/node_modules
