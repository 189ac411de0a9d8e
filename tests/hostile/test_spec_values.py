"""Values a spec may hold, and what `validate` refuses before anything runs.

Each test is named after the mistake (or the attack) it catches and asserts the exact located
line a user reads: `file:line:col: message`.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap

import pytest

from aq_airflow.pipeline_spec import SpecFile
from aq_airflow.pipeline_spec.deep import deep_issues
from tests.helpers import issues_of, write

# -- durations ------------------------------------------------------------------------------


def test_a_retry_delay_of_ten_billion_days_is_refused_instead_of_overflowing_at_load():
    text = "steps:\n  a:\n    python: m:f\n    retry_delay: 9999999999d\n"
    assert issues_of(text) == [
        "pipe.aq.yaml:4:18: steps.a.retry_delay: `9999999999d` is too long: a retry delay is at most 365d"
    ]


def test_a_timeout_of_a_hundred_digits_is_refused_without_reading_the_number():
    text = f"timeout: {'9' * 100}s\nsteps:\n  a:\n    python: m:f\n    timeout: 366d\n"
    assert issues_of(text) == [
        f"pipe.aq.yaml:1:10: timeout: `{'9' * 100}s` is too long: a timeout is at most 365d",
        "pipe.aq.yaml:5:14: steps.a.timeout: `366d` is too long: a timeout is at most 365d",
    ]


def test_a_zero_timeout_is_refused_because_airflow_reads_it_as_no_timeout():
    text = "steps:\n  a:\n    python: m:f\n    timeout: 0s\n"
    assert issues_of(text) == ["pipe.aq.yaml:4:14: steps.a.timeout: `0s` is too short: a timeout is at least 1s"]


def test_a_retention_or_freshness_age_beyond_ten_years_is_refused():
    text = """
        artifacts_ttl: 3651d
        steps:
          a:
            sql: SELECT 1 AS x
            checks: [{name: fresh, freshness: {column: x, max_age: 99999999d}}]
    """
    assert issues_of(text) == [
        "pipe.aq.yaml:1:16: artifacts_ttl: `3651d` is too long: a duration is at most 3650d",
        "pipe.aq.yaml:5:60: steps.a.checks.0.freshness.max_age: `99999999d` is too long: a duration is at most 3650d",
    ]


def test_the_longest_delays_and_timeouts_build_and_serialize_as_an_airflow_dag():
    """The bounds are ones Airflow takes: the DAG builds, serializes and its timedeltas survive."""
    from airflow.serialization.serialized_objects import DagSerialization

    from aq_airflow.live_dags import build_dag
    from aq_airflow.plan import compile_text
    from tests.helpers import spec_file

    text = """
        pipeline: longest
        timeout: 365d
        artifacts_ttl: 3650d
        defaults: {retry_delay: 365d, timeout: 365d, retries: 1}
        steps:
          a:
            python: m:f
            checks: [{name: fresh, freshness: {column: x, max_age: 3650d}}]
    """
    dag = build_dag(compile_text(spec_file(text)))
    year = datetime.timedelta(days=365)
    assert dag.dagrun_timeout == year
    assert {t.retry_delay for t in dag.tasks} == {year}
    assert {t.execution_timeout for t in dag.tasks} == {year}
    back = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert {t.retry_delay for t in back.tasks} == {year}
    assert {t.execution_timeout for t in back.tasks} == {year}


# -- blank text -----------------------------------------------------------------------------


def test_an_empty_sql_step_is_refused_instead_of_failing_at_run_time():
    assert issues_of("steps:\n  a:\n    sql: ''\n") == [
        "pipe.aq.yaml:3:10: steps.a.sql: must not be blank: write an SQL query"
    ]


@pytest.mark.parametrize(
    ("command", "col", "message"),
    [
        ("''", 14, "must not be blank: write the command to run"),
        ("'   '", 14, "must not be blank: write the command to run"),
        ("['', --flag]", 14, "the first item is blank: it names the program to run"),
    ],
)
def test_an_empty_command_is_refused_instead_of_succeeding_having_run_nothing(command, col, message):
    assert issues_of(f"steps:\n  a:\n    command: {command}\n") == [f"pipe.aq.yaml:3:{col}: steps.a.command: {message}"]


def test_blank_expressions_conditions_queries_and_images_are_refused():
    text = """
        steps:
          a:
            python: m:f
            image: ' '
            checks:
              - {name: c1, expression: ' '}
              - {name: c2, not_null: x, where: ''}
              - {name: c3, sql: "\\n"}
            metrics:
              - {name: m1, expression: '', where: ' '}
    """
    assert issues_of(text) == [
        "pipe.aq.yaml:4:12: steps.a.image: must not be blank: write a value",
        "pipe.aq.yaml:6:32: steps.a.checks.0.expression: must not be blank: write an SQL expression",
        "pipe.aq.yaml:7:40: steps.a.checks.1.where: must not be blank: write an SQL condition",
        "pipe.aq.yaml:8:25: steps.a.checks.2.sql: must not be blank: write an SQL query",
        "pipe.aq.yaml:10:32: steps.a.metrics.0.expression: must not be blank: write an SQL expression",
        "pipe.aq.yaml:10:43: steps.a.metrics.0.where: must not be blank: write an SQL condition",
    ]


def test_a_blank_python_function_is_refused():
    assert issues_of("steps:\n  a:\n    python: ''\n") == [
        "pipe.aq.yaml:3:13: steps.a.python: `` is not allowed here; expected `package.module:function`, "
        "importable inside the step's image"
    ]


# -- the monitoring tables ------------------------------------------------------------------

_RESULTS_MESSAGE = (
    "is where aq-airflow records check and metric results; publishing into it would replace or corrupt every "
    "pipeline's history (in any schema): choose another table name"
)


@pytest.mark.parametrize(
    ("spec", "table"),
    [
        ("", "aq_metric_results"),
        ("results_schema: analytics\n", "analytics.aq_metric_results"),
        ("", "other_db.audit.AQ_CHECK_RESULTS"),  # Snowflake folds unquoted names: the same table
    ],
)
def test_publishing_over_the_results_tables_to_wipe_the_monitoring_history_is_refused(spec, table):
    text = f"{spec}steps:\n  a:\n    sql: SELECT 1 AS x\n    publish: {{table: {table}, mode: replace}}\n"
    line = spec.count("\n") + 4
    assert issues_of(text) == [f"pipe.aq.yaml:{line}:22: steps.a.publish.table: `{table}` {_RESULTS_MESSAGE}"]


def test_reading_the_results_tables_is_still_allowed():
    text = "steps:\n  history:\n    table: analytics.aq_metric_results\n    publish: {table: analytics.my_history}\n"
    assert issues_of(text) == []


def test_the_reserved_names_are_the_results_store_tables():
    from aq_airflow.pipeline_spec.models import RESULTS_TABLES
    from aq_airflow.results.store import CHECKS_TABLE, METRICS_TABLE

    assert set(RESULTS_TABLES) == {CHECKS_TABLE, METRICS_TABLE}


# -- credentials, by value ------------------------------------------------------------------


def _env_fix(name: str) -> str:
    return f"reference a Kubernetes Secret instead, `{name}: {{secret: my-secret, key: {name.lower()}}}`"


def test_a_password_in_a_database_url_env_value_is_refused():
    text = "steps:\n  a:\n    python: m:f\n    env:\n      DATABASE_URL: postgresql://admin:pw@db.internal/prod\n"
    assert issues_of(text) == [
        "pipe.aq.yaml:5:21: steps.a.env.DATABASE_URL: this looks like a credential (a URI with a password): "
        + _env_fix("DATABASE_URL")
    ]


SECRETS = {
    "an AWS access key": "AKIAIOSFODNN7EXAMPLE",
    "an API key (sk-...)": "sk-proj-Xq3vT9bL2mN8pR4sW6yZ1aC5dE7fG0hJ",
    "a Slack token or webhook": "https://hooks.slack.com/services/T0ABCDEFG/B0ABCDEFG/aBcDeFgHiJkLmNoPqRsTuVwX",
    "a private key": "-----BEGIN RSA PRIVATE KEY-----",
    "a GitHub token": "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8",
    "a password setting": "--password=hunter2",
}


@pytest.mark.parametrize(("kind", "value"), SECRETS.items(), ids=list(SECRETS))
def test_a_pasted_key_or_token_in_an_innocently_named_env_value_is_refused(kind, value):
    text = f"steps:\n  a:\n    python: m:f\n    env:\n      CONFIG: '{value}'\n"
    assert issues_of(text) == [
        f"pipe.aq.yaml:5:15: steps.a.env.CONFIG: this looks like a credential ({kind}): " + _env_fix("CONFIG")
    ]


def test_a_private_key_block_pasted_into_defaults_env_is_refused_and_never_repeated():
    text = """
        defaults:
          env:
            DEPLOY_KEY: |
              -----BEGIN OPENSSH PRIVATE KEY-----
              b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
              -----END OPENSSH PRIVATE KEY-----
        steps:
          a: {python: m:f}
    """
    issues = issues_of(text)
    assert issues == [
        "pipe.aq.yaml:3:17: defaults.env.DEPLOY_KEY: this looks like a credential (a private key): "
        + _env_fix("DEPLOY_KEY")
    ]
    assert "b3BlbnNza" not in issues[0]


_ELSEWHERE = (
    "a spec is not secret (it shows in the Airflow UI): keep the value in a Kubernetes Secret and pass it to "
    "the step as an env value `{secret: name, key: k}`"
)


def test_a_token_in_step_args_params_or_a_command_is_refused_where_it_is():
    token = "ghp_" + "Zy9Xw8Vu7T" * 3 + "s6R5q4"
    text = f"""
        params: {{api: {{token: {token}}}}}
        steps:
          a:
            python: m:f
            args: {{headers: [x, "Authorization: Bearer {token}"]}}
          b:
            command: [curl, -u, "admin:{token}", "https://admin:hunter22@api.example.com/v1"]
    """
    assert issues_of(text) == [
        f"pipe.aq.yaml:1:23: params.api.token: this looks like a credential (a GitHub token): {_ELSEWHERE}",
        f"pipe.aq.yaml:5:25: steps.a.args.headers.1: this looks like a credential (a bearer token): {_ELSEWHERE}",
        f"pipe.aq.yaml:7:25: steps.b.command.2: this looks like a credential (a GitHub token): {_ELSEWHERE}",
        f"pipe.aq.yaml:7:75: steps.b.command.3: this looks like a credential (a URI with a password): {_ELSEWHERE}",
    ]


def test_a_credential_named_variable_holding_a_literal_is_still_refused_by_its_name():
    text = "steps:\n  a:\n    python: m:f\n    env: {PASSWORD_FILE: hunter2, API_KEY: sk-abc}\n"
    assert issues_of(text) == [
        "pipe.aq.yaml:4:10: steps.a.env: `PASSWORD_FILE` looks like a credential: reference a Kubernetes Secret "
        "instead, `PASSWORD_FILE: {secret: my-secret, key: password_file}`"
    ]


def test_paths_and_innocent_values_are_not_mistaken_for_credentials():
    text = """
        params:
          sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
          run_uuid: 123e4567-e89b-12d3-a456-426614174000
          commit: da39a3ee5e6b4b0d3255bfef95601890afd80709
        steps:
          a:
            python: m:f
            image: ghcr.io/acme/sk-learn-trainer-v2:2024.1
            env:
              PASSWORD_FILE: /etc/pw
              GOOGLE_APPLICATION_CREDENTIALS: /var/secrets/google/key.json
              AWS_WEB_IDENTITY_TOKEN_FILE: /var/run/secrets/eks.amazonaws.com/serviceaccount/token
              API_URL: https://api.example.com/v1?user=bob
              DATABASE_URL: postgresql://reporting@db.internal:5432/prod
              TEMPLATED_URL: "postgresql://admin:{{ var.value.db_password }}@db.internal/prod"
              EXPANDED_URL: "https://bob:${API_PASSWORD}@api.example.com/"
              MAX_TOKENS: 512
              TOKENIZERS_PARALLELISM: "false"
              SECRETS_MANAGER_REGION: eu-west-1
              CONTACT: mailto:team@example.com
            args: {login: "ssh://git@github.com/acme/repo", where: "password = 'x'"}
    """
    assert issues_of(text) == []


# -- ranges the wrong way round -------------------------------------------------------------


def test_ranges_written_the_wrong_way_round_are_refused():
    text = """
        steps:
          a:
            sql: SELECT 1 AS x
            checks:
              - {name: c1, column: x, between: [5, 0]}
              - {name: c2, row_count: {min: 10, max: 5}}
            metrics:
              - {name: m1, count: '*', bounds: {min: 3, max: 1.5}}
    """
    assert issues_of(text) == [
        "pipe.aq.yaml:5:40: steps.a.checks.0.between: `between` is reversed: the minimum (5) is above the maximum "
        "(0); swap them",
        "pipe.aq.yaml:6:31: steps.a.checks.1.row_count: `row_count` is reversed: the minimum (10) is above the "
        "maximum (5); swap them",
        "pipe.aq.yaml:8:40: steps.a.metrics.0.bounds: `bounds` is reversed: the minimum (3) is above the maximum "
        "(1.5); swap them",
    ]


def test_templated_or_equal_ends_of_a_range_are_left_to_run_time():
    text = """
        steps:
          a:
            sql: SELECT 1 AS x
            checks:
              - {name: c1, column: x, between: ["{{ params.hi }}", 0]}
              - {name: c2, row_count: {min: "{{ params.min_rows }}", max: 5}}
              - {name: c3, column: x, between: [1, 1]}
            metrics:
              - {name: m1, count: '*', bounds: {min: 2, max: 2}}
    """
    assert issues_of(text) == []


def test_an_end_date_before_the_start_date_is_refused():
    text = "start_date: 2026-01-01\nend_date: 2025-12-31\nsteps:\n  a:\n    sql: SELECT 1\n"
    assert issues_of(text) == [
        "pipe.aq.yaml:2:11: end_date: `end_date` is before `start_date`: no run could ever be scheduled; swap them"
    ]


# -- what only `validate` checks: SQL and Great Expectations ---------------------------------


def deep(text: str) -> list[str]:
    """What `aq-airflow validate` adds for a spec that already plans."""
    assert issues_of(text) == []
    return [str(i) for i in deep_issues(SpecFile("pipe.aq.yaml", textwrap.dedent(text).lstrip("\n")))]


_EVERY = "in none of DuckDB, PostgreSQL, Snowflake, generic SQL"


def test_unparsable_sql_in_checks_metrics_and_steps_is_found_at_validate():
    text = """
        steps:
          a:
            sql: SELECT * FROM raw.orders WHERE
            checks:
              - {name: c1, sql: "SELECT count(*) > 0 FROM a; DROP TABLE raw.orders"}
          b:
            python: m:f
            inputs: [a]
            checks:
              - {name: c1, expression: "amount >= 0 AND"}
              - {name: c2, not_null: x, where: "(day > 3"}
              - {name: c3, sql: "DELETE FROM b"}
            metrics:
              - {name: m1, expression: "sum(x) FROM b"}
    """
    assert deep(text) == [
        f"pipe.aq.yaml:3:10: steps.a.sql: is not valid SQL ({_EVERY}): something is missing near `WHERE` "
        "(line 1, column 26)",
        "pipe.aq.yaml:5:25: steps.a.checks.0.sql: holds 2 statements: write exactly one SELECT",
        "pipe.aq.yaml:10:32: steps.b.checks.0.expression: is not valid SQL (DuckDB): something is missing near "
        "`AND` (line 1, column 13)",
        "pipe.aq.yaml:11:40: steps.b.checks.1.where: is not valid SQL (DuckDB): expecting `)` after `3` "
        "(line 1, column 8)",
        "pipe.aq.yaml:12:25: steps.b.checks.2.sql: is DELETE, not a query: write one SELECT",
        "pipe.aq.yaml:14:32: steps.b.metrics.0.expression: must be a single SQL expression (no FROM, WHERE, "
        "GROUP BY, ...)",
    ]


def test_warehouse_sql_passes_if_any_supported_dialect_reads_it_and_step_output_sql_must_be_duckdb():
    """A sql step's warehouse is an Airflow connection, unknown at validate: Snowflake's
    MATCH_RECOGNIZE passes there. A python step's checks run in DuckDB: PostgreSQL's `@@` fails."""
    text = """
        steps:
          a:
            sql: SELECT * FROM t MATCH_RECOGNIZE (PARTITION BY a ORDER BY b PATTERN (x+) DEFINE x AS a > 0)
            checks: [{name: c1, expression: "doc @@ to_tsquery('churn')"}]
          b:
            python: m:f
            inputs: [a]
            checks: [{name: c1, expression: "doc @@ to_tsquery('churn')"}]
    """
    assert deep(text) == [
        "pipe.aq.yaml:8:37: steps.b.checks.0.expression: is not valid SQL (DuckDB): unexpected `@` (line 1, column 5)"
    ]


def test_airflow_templates_in_sql_are_not_mistaken_for_syntax_errors():
    text = """
        params: {n: 10, table: raw.orders}
        steps:
          a:
            sql: "SELECT * FROM {{ params.table }} WHERE day = '{{ ds }}' LIMIT {{ params.n }}"
            checks:
              - {name: c1, expression: "x > {{ params.n }}", where: "day = '{{ ds }}'"}
              - {name: c2, sql: "SELECT count(*) > {% if params.n %}1{% else %}0{% endif %} FROM a"}
    """
    assert deep(text) == []


def test_an_unknown_great_expectations_name_is_found_at_validate():
    text = """
        steps:
          a:
            python: m:f
            checks:
              - {name: c1, expect: expect_column_values_to_not_be_nul, kwargs: {column: x}}
              - {name: c2, expect: expect_the_moon}
    """
    assert deep(text) == [
        "pipe.aq.yaml:5:28: steps.a.checks.0.expect: Great Expectations has no `expect_column_values_to_not_be_nul`; "
        "did you mean `expect_column_values_to_not_be_null`?",
        "pipe.aq.yaml:6:28: steps.a.checks.1.expect: Great Expectations has no `expect_the_moon`; see the Great "
        "Expectations gallery",
    ]


def test_misspelt_or_missing_expectation_kwargs_are_found_at_validate():
    text = """
        steps:
          a:
            python: m:f
            checks:
              - {name: c1, expect: expect_column_values_to_be_between, kwargs: {colum: x, min_value: 0}}
              - {name: c2, expect: expect_table_row_count_to_equal}
              - {name: c3, expect: expect_column_values_to_not_be_null, kwargs: {column: x, mostly: 0.9}}
    """
    assert deep(text) == [
        "pipe.aq.yaml:5:72: steps.a.checks.0: `expect_column_values_to_be_between` needs kwargs `column`",
        "pipe.aq.yaml:5:73: steps.a.checks.0.kwargs: `expect_column_values_to_be_between` takes no `colum`; did you "
        "mean `column`?",
        "pipe.aq.yaml:6:28: steps.a.checks.1: `expect_table_row_count_to_equal` needs kwargs `value`",
    ]


def test_validate_on_the_command_line_reports_sql_and_expectations_and_fails(tmp_path, capsys):
    from aq_airflow.cli.main import main

    path = write(
        tmp_path,
        "p.aq.yaml",
        """
        steps:
          a:
            sql: SELECT (1
            checks: [{name: c1, expect: expect_column_to_exist_twice, kwargs: {column: x}}]
        """,
    )
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:3:10: steps.a.sql: is not valid SQL ({_EVERY}): expecting `)` after `1` (line 1, column 9)",
        f"{path}:4:33: steps.a.checks.0.expect: Great Expectations has no `expect_column_to_exist_twice`; "
        "did you mean `expect_column_to_exist`?",
    ]


def test_the_dags_folder_loader_never_imports_great_expectations_nor_checks_sql(dags_folder):
    """A spec whose SQL and expectation only validate finds wrong still loads as its DAG (its
    checks fail at run time), and parsing it never pays for importing Great Expectations."""
    write(
        dags_folder,
        "late.aq.yaml",
        """
        steps:
          a:
            sql: SELECT (1
            checks: [{name: c1, expect: expect_the_moon}]
        """,
    )
    code = (
        "import sys\n"
        "from aq_airflow.live_dags import load_dags\n"
        f"dags = load_dags({{'__file__': {str(dags_folder / 'aq_dags_0.py')!r}}})\n"
        "print([sorted(d.tags) for d in dags], 'great_expectations' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[['aq']] False"  # the DAG itself, not an invalid-spec placeholder


# -- `aq-airflow run --param` -----------------------------------------------------------------


def test_a_run_param_the_spec_does_not_declare_is_refused_with_the_declared_ones(tmp_path, capsys):
    from aq_airflow.cli.main import main

    path = write(tmp_path, "p.aq.yaml", "params: {min_rows: 1000, region: eu}\nsteps:\n  a:\n    sql: SELECT 1\n")
    assert main(["run", str(path), "--param", "min_row=5", "--param", "dry_run=true"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:1:1: --param min_row: `params:` declares no `min_row`; declared: min_rows, region; did you mean "
        "`min_rows`?",
        f"{path}:1:1: --param dry_run: `params:` declares no `dry_run`; declared: min_rows, region",
    ]


def test_a_run_param_for_a_spec_without_params_says_where_to_declare_it(tmp_path, capsys):
    from aq_airflow.cli.main import main

    path = write(tmp_path, "p.aq.yaml", "# a pipeline\nsteps:\n  a:\n    sql: SELECT 1\n")
    assert main(["run", str(path), "--param", "day=2026-01-01"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:2:1: --param day: this spec declares no params; add `day` under `params:` to take it"
    ]


@pytest.mark.parametrize(
    "value",
    ["SELECT '{{ conn.aq_warehouse.password }}' AS p", "{{ conn.aq_warehouse.get_uri() }}", "{{conn['wh'].login}}"],
)
def test_a_template_reading_an_airflow_connection_is_refused(value):
    """`{{ conn.x.password }}` in a query wrote the warehouse password into a results row (found by
    a hostile tester); `{{ var.value.x }}` and `{{ ds }}` stay allowed."""
    import json

    from aq_airflow.pipeline_spec import SpecError, SpecFile, parse_spec

    allowed = json.dumps("SELECT '{{ var.value.x }}' AS v, '{{ ds }}' AS d")
    text = f"steps:\n  a:\n    sql: {json.dumps(value)}\n  b:\n    sql: {allowed}\n"
    with pytest.raises(SpecError) as error:
        parse_spec(SpecFile("t.aq.yaml", text))
    (issue,) = error.value.issues
    assert (issue.line, issue.col) == (3, 10) and "may not read Airflow connections" in issue.message
