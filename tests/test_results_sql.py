"""The results tables' statements, pinned: each one's text as the warehouse adapter renders it for
DuckDB, PostgreSQL and Snowflake, and its DB-API parameters, compared exactly. Every name of ours is
normalized for the dialect and quoted (``sample`` is a Snowflake keyword: bare, it does not parse),
every value is a parameter. A change here is a change to what runs on every warehouse: update the
golden text only with a reason."""

from __future__ import annotations

import datetime

import pytest
import sqlglot
from sqlglot.errors import ParseError

from aq_airflow.results.history import _CHECK_COLUMNS, _METRIC_COLUMNS, _RUN_CHECK_COLUMNS, _RUN_METRIC_COLUMNS
from aq_airflow.results.rows import CHECKS_TABLE, DEPLOYMENTS_TABLE, METRICS_TABLE, Role
from aq_airflow.results.statements import Statements
from aq_airflow.results.views import DEPLOYMENT_COLUMNS
from aq_airflow.warehouse import Warehouse

D = DATE = datetime.datetime(2026, 1, 2)
KEY = {"dag_id": "d", "logical_date": D, "step": "s", "map_index": -1, "role": Role.CHECK}
DIALECTS = ("duckdb", "postgres", "snowflake")


def cases(st: Statements) -> dict:
    """Every statement, with arguments that reach each of its clauses."""

    def w(table, present=None, **given):
        return lambda bind: st.filters(bind, table, "d", present, **given)

    legacy = {
        c
        for c in (
            "dag_id",
            "step",
            "kind",
            "name",
            "map_index",
            "logical_date",
            "outcome",
            "severity",
            "message",
            "run_id",
            "failing_rows",
            "total_rows",
            "created_at",
            "try_number",
            "sample",
        )
    }
    return {
        "create_schema": st.create_schema(),
        "create_checks": st.create_table(CHECKS_TABLE),
        "create_metrics": st.create_table(METRICS_TABLE),
        "create_deployments": st.create_table(DEPLOYMENTS_TABLE),
        "add_role": st.add_column(CHECKS_TABLE, "role"),
        "add_code_digest": st.add_column(METRICS_TABLE, "code_digest"),
        "probe": st.probe(CHECKS_TABLE),
        "move_when_verdicts": st.move_when_verdicts(),
        "delete_key": st.delete_key(CHECKS_TABLE, KEY),
        "delete_items_past": st.delete_items_past(CHECKS_TABLE, KEY, 3),
        "insert_metrics": st.insert(METRICS_TABLE),
        "metric_history": st.metric_history("d", "s", "m", -1, D, 7),
        "run_result": st.run_result(CHECKS_TABLE, "d", "r", "s", "c", -1, D),
        "champion_date": st.champion_date("d", "s", -1, D),
        "metric_value": st.metric_value("d", "s", "m", -1, D),
        "check_series": st.series(
            CHECKS_TABLE, _CHECK_COLUMNS, None, w(CHECKS_TABLE, step="s", start=D), 0, 20, 400, messages=False
        ),
        "metric_series": st.series(METRICS_TABLE, _METRIC_COLUMNS, None, w(METRICS_TABLE), 20, 40, 60),
        "timeline": st.timeline(CHECKS_TABLE, _CHECK_COLUMNS, None, w(CHECKS_TABLE, end=D), 101, 0),
        "run_rows": st.run_rows(
            CHECKS_TABLE,
            _RUN_CHECK_COLUMNS,
            None,
            w(CHECKS_TABLE, logical_date=D, steps=["a", "b"], map_index=0, role=Role.WHEN),
        ),
        "run_rows_release_n": st.run_rows(
            CHECKS_TABLE, _RUN_CHECK_COLUMNS, legacy, w(CHECKS_TABLE, legacy, logical_date=D, role=Role.WHEN)
        ),
        "steps": st.steps("d"),
        "overview": st.overview(["d", "e"], None),
        "newest_dates": st.newest_dates(["d"]),
        "newest_rows": st.newest_rows(
            CHECKS_TABLE,
            ["logical_date", "step", "role", "sample", "message"],
            None,
            w(CHECKS_TABLE, run_id="r"),
            50,
            text=("logical_date",),
        ),
        "deployments": st.deployments(DEPLOYMENT_COLUMNS, None, w(DEPLOYMENTS_TABLE, endpoint="churn", run_id="r"), 20),
        "endpoints": st.endpoints(DEPLOYMENT_COLUMNS, None, w(DEPLOYMENTS_TABLE)),
        "gate_rows": st.run_rows(
            METRICS_TABLE, _RUN_METRIC_COLUMNS, None, w(METRICS_TABLE, dated_steps=[(D, "train"), (D, "score")])
        ),
    }


GOLDEN = {
    'create_schema': {
        'duckdb': 'CREATE SCHEMA IF NOT EXISTS "aq"',
        'postgres': 'CREATE SCHEMA IF NOT EXISTS "aq"',
        'snowflake': 'CREATE SCHEMA IF NOT EXISTS "AQ"',
    },
    'create_checks': {
        'duckdb': (
            'CREATE TABLE IF NOT EXISTS "aq"."aq_check_results" ("dag_id" TEXT, "run_id" TEXT, "step" TEXT, '
            '"name" TEXT, "kind" TEXT, "outcome" TEXT, "severity" TEXT, "message" TEXT, "observed" TEXT, '
            '"expected" TEXT, "failing_rows" BIGINT, "total_rows" BIGINT, "sample" TEXT, "details" TEXT, '
            '"map_index" INT, "try_number" INT, "spec_hash" TEXT, "image" TEXT, "logical_date" TIMESTAMP, '
            '"created_at" TIMESTAMP, "item_label" TEXT, "role" TEXT DEFAULT \'check\', "code_digest" TEXT, '
            '"image_digest" TEXT)'
        ),
        'postgres': (
            'CREATE TABLE IF NOT EXISTS "aq"."aq_check_results" ("dag_id" TEXT, "run_id" TEXT, "step" TEXT, '
            '"name" TEXT, "kind" TEXT, "outcome" TEXT, "severity" TEXT, "message" TEXT, "observed" TEXT, '
            '"expected" TEXT, "failing_rows" BIGINT, "total_rows" BIGINT, "sample" TEXT, "details" TEXT, '
            '"map_index" INT, "try_number" INT, "spec_hash" TEXT, "image" TEXT, "logical_date" TIMESTAMP, '
            '"created_at" TIMESTAMP, "item_label" TEXT, "role" TEXT DEFAULT \'check\', "code_digest" TEXT, '
            '"image_digest" TEXT)'
        ),
        'snowflake': (
            'CREATE TABLE IF NOT EXISTS "AQ"."AQ_CHECK_RESULTS" ("DAG_ID" VARCHAR, "RUN_ID" VARCHAR, "STEP" '
            'VARCHAR, "NAME" VARCHAR, "KIND" VARCHAR, "OUTCOME" VARCHAR, "SEVERITY" VARCHAR, "MESSAGE" '
            'VARCHAR, "OBSERVED" VARCHAR, "EXPECTED" VARCHAR, "FAILING_ROWS" BIGINT, "TOTAL_ROWS" BIGINT, '
            '"SAMPLE" VARCHAR, "DETAILS" VARCHAR, "MAP_INDEX" INT, "TRY_NUMBER" INT, "SPEC_HASH" VARCHAR, '
            '"IMAGE" VARCHAR, "LOGICAL_DATE" TIMESTAMPNTZ, "CREATED_AT" TIMESTAMPNTZ, "ITEM_LABEL" VARCHAR, '
            '"ROLE" VARCHAR DEFAULT \'check\', "CODE_DIGEST" VARCHAR, "IMAGE_DIGEST" VARCHAR)'
        ),
    },
    'create_metrics': {
        'duckdb': (
            'CREATE TABLE IF NOT EXISTS "aq"."aq_metric_results" ("dag_id" TEXT, "run_id" TEXT, "step" TEXT, '
            '"name" TEXT, "kind" TEXT, "outcome" TEXT, "severity" TEXT, "message" TEXT, "value" DOUBLE, '
            '"expected" TEXT, "map_index" INT, "try_number" INT, "spec_hash" TEXT, "image" TEXT, '
            '"logical_date" TIMESTAMP, "created_at" TIMESTAMP, "item_label" TEXT, "code_digest" TEXT, '
            '"image_digest" TEXT)'
        ),
        'postgres': (
            'CREATE TABLE IF NOT EXISTS "aq"."aq_metric_results" ("dag_id" TEXT, "run_id" TEXT, "step" TEXT, '
            '"name" TEXT, "kind" TEXT, "outcome" TEXT, "severity" TEXT, "message" TEXT, "value" DOUBLE '
            'PRECISION, "expected" TEXT, "map_index" INT, "try_number" INT, "spec_hash" TEXT, "image" TEXT, '
            '"logical_date" TIMESTAMP, "created_at" TIMESTAMP, "item_label" TEXT, "code_digest" TEXT, '
            '"image_digest" TEXT)'
        ),
        'snowflake': (
            'CREATE TABLE IF NOT EXISTS "AQ"."AQ_METRIC_RESULTS" ("DAG_ID" VARCHAR, "RUN_ID" VARCHAR, "STEP" '
            'VARCHAR, "NAME" VARCHAR, "KIND" VARCHAR, "OUTCOME" VARCHAR, "SEVERITY" VARCHAR, "MESSAGE" '
            'VARCHAR, "VALUE" DOUBLE, "EXPECTED" VARCHAR, "MAP_INDEX" INT, "TRY_NUMBER" INT, "SPEC_HASH" '
            'VARCHAR, "IMAGE" VARCHAR, "LOGICAL_DATE" TIMESTAMPNTZ, "CREATED_AT" TIMESTAMPNTZ, "ITEM_LABEL" '
            'VARCHAR, "CODE_DIGEST" VARCHAR, "IMAGE_DIGEST" VARCHAR)'
        ),
    },
    'add_role': {
        'duckdb': 'ALTER TABLE "aq"."aq_check_results" ADD COLUMN IF NOT EXISTS "role" TEXT DEFAULT \'check\'',
        'postgres': 'ALTER TABLE "aq"."aq_check_results" ADD COLUMN IF NOT EXISTS "role" TEXT DEFAULT \'check\'',
        'snowflake': 'ALTER TABLE "AQ"."AQ_CHECK_RESULTS" ADD IF NOT EXISTS "ROLE" VARCHAR DEFAULT \'check\'',
    },
    'add_code_digest': {
        'duckdb': 'ALTER TABLE "aq"."aq_metric_results" ADD COLUMN IF NOT EXISTS "code_digest" TEXT',
        'postgres': 'ALTER TABLE "aq"."aq_metric_results" ADD COLUMN IF NOT EXISTS "code_digest" TEXT',
        'snowflake': 'ALTER TABLE "AQ"."AQ_METRIC_RESULTS" ADD IF NOT EXISTS "CODE_DIGEST" VARCHAR',
    },
    'probe': {
        'duckdb': 'SELECT * FROM "aq"."aq_check_results" WHERE 1 = 0',
        'postgres': 'SELECT * FROM "aq"."aq_check_results" WHERE 1 = 0',
        'snowflake': 'SELECT * FROM "AQ"."AQ_CHECK_RESULTS" WHERE 1 = 0',
    },
    'move_when_verdicts': {
        'duckdb': (
            'UPDATE "aq"."aq_check_results" SET "step" = SUBSTRING("step", 1, LENGTH("step") - ?), "role" = ? '
            'WHERE "kind" = ? AND "name" = ? AND "step" LIKE ?'
        ),
        'postgres': (
            'UPDATE "aq"."aq_check_results" SET "step" = SUBSTRING("step" FROM 1 FOR LENGTH("step") - %s), '
            '"role" = %s WHERE "kind" = %s AND "name" = %s AND "step" LIKE %s'
        ),
        'snowflake': (
            'UPDATE "AQ"."AQ_CHECK_RESULTS" SET "STEP" = SUBSTRING("STEP", 1, LENGTH("STEP") - %s), "ROLE" = '
            '%s WHERE "KIND" = %s AND "NAME" = %s AND "STEP" LIKE %s'
        ),
    },
    'delete_key': {
        'duckdb': (
            'DELETE FROM "aq"."aq_check_results" WHERE "dag_id" = ? AND "logical_date" = ? AND "step" = ? AND '
            '"map_index" = ? AND "role" = ?'
        ),
        'postgres': (
            'DELETE FROM "aq"."aq_check_results" WHERE "dag_id" = %s AND "logical_date" = %s AND "step" = %s '
            'AND "map_index" = %s AND "role" = %s'
        ),
        'snowflake': (
            'DELETE FROM "AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" = %s AND "LOGICAL_DATE" = %s AND "STEP" = %s '
            'AND "MAP_INDEX" = %s AND "ROLE" = %s'
        ),
    },
    'delete_items_past': {
        'duckdb': (
            'DELETE FROM "aq"."aq_check_results" WHERE ("dag_id" = ? AND "logical_date" = ? AND "step" = ? '
            'AND "role" = ?) AND "map_index" >= ?'
        ),
        'postgres': (
            'DELETE FROM "aq"."aq_check_results" WHERE ("dag_id" = %s AND "logical_date" = %s AND "step" = %s '
            'AND "role" = %s) AND "map_index" >= %s'
        ),
        'snowflake': (
            'DELETE FROM "AQ"."AQ_CHECK_RESULTS" WHERE ("DAG_ID" = %s AND "LOGICAL_DATE" = %s AND "STEP" = %s '
            'AND "ROLE" = %s) AND "MAP_INDEX" >= %s'
        ),
    },
    'insert_metrics': {
        'duckdb': (
            'INSERT INTO "aq"."aq_metric_results" ("dag_id", "run_id", "step", "name", "kind", "outcome", '
            '"severity", "message", "value", "expected", "map_index", "try_number", "spec_hash", "image", '
            '"logical_date", "created_at", "item_label", "code_digest", "image_digest") VALUES (?, ?, ?, ?, ?, '
            '?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'
        ),
        'postgres': (
            'INSERT INTO "aq"."aq_metric_results" ("dag_id", "run_id", "step", "name", "kind", "outcome", '
            '"severity", "message", "value", "expected", "map_index", "try_number", "spec_hash", "image", '
            '"logical_date", "created_at", "item_label", "code_digest", "image_digest") VALUES (%s, %s, %s, %s, '
            '%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)'
        ),
        'snowflake': (
            'INSERT INTO "AQ"."AQ_METRIC_RESULTS" ("DAG_ID", "RUN_ID", "STEP", "NAME", "KIND", "OUTCOME", '
            '"SEVERITY", "MESSAGE", "VALUE", "EXPECTED", "MAP_INDEX", "TRY_NUMBER", "SPEC_HASH", "IMAGE", '
            '"LOGICAL_DATE", "CREATED_AT", "ITEM_LABEL", "CODE_DIGEST", "IMAGE_DIGEST") VALUES (%s, %s, %s, %s, '
            '%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)'
        ),
    },
    'metric_history': {
        'duckdb': (
            'SELECT "value" FROM (SELECT "value", "outcome", "logical_date", ROW_NUMBER() OVER (PARTITION BY '
            '"logical_date" ORDER BY "created_at" DESC, "try_number" DESC) AS "aq_rank" FROM '
            '"aq"."aq_metric_results" WHERE ("dag_id" = ? AND "step" = ? AND "name" = ? AND "map_index" = ?) '
            'AND "logical_date" < ?) AS "aq_latest" WHERE ("aq_rank" = 1 AND "outcome" = ?) AND NOT "value" '
            'IS NULL ORDER BY "logical_date" DESC LIMIT 7'
        ),
        'postgres': (
            'SELECT "value" FROM (SELECT "value", "outcome", "logical_date", ROW_NUMBER() OVER (PARTITION BY '
            '"logical_date" ORDER BY "created_at" DESC NULLS LAST, "try_number" DESC NULLS LAST) AS "aq_rank" '
            'FROM "aq"."aq_metric_results" WHERE ("dag_id" = %s AND "step" = %s AND "name" = %s AND '
            '"map_index" = %s) AND "logical_date" < %s) AS "aq_latest" WHERE ("aq_rank" = 1 AND "outcome" = '
            '%s) AND NOT "value" IS NULL ORDER BY "logical_date" DESC NULLS LAST LIMIT 7'
        ),
        'snowflake': (
            'SELECT "VALUE" FROM (SELECT "VALUE", "OUTCOME", "LOGICAL_DATE", ROW_NUMBER() OVER (PARTITION BY '
            '"LOGICAL_DATE" ORDER BY "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC NULLS LAST) AS "AQ_RANK" '
            'FROM "AQ"."AQ_METRIC_RESULTS" WHERE ("DAG_ID" = %s AND "STEP" = %s AND "NAME" = %s AND '
            '"MAP_INDEX" = %s) AND "LOGICAL_DATE" < %s) AS "AQ_LATEST" WHERE ("AQ_RANK" = 1 AND "OUTCOME" = '
            '%s) AND NOT "VALUE" IS NULL ORDER BY "LOGICAL_DATE" DESC NULLS LAST LIMIT 7'
        ),
    },
    'run_result': {
        'duckdb': (
            'SELECT NULL, "outcome" FROM "aq"."aq_check_results" WHERE "dag_id" = ? AND "run_id" = ? AND '
            '"step" = ? AND "name" = ? AND "map_index" = ? AND "logical_date" = ? AND "role" = ? ORDER BY '
            '"created_at" DESC, "try_number" DESC LIMIT 1'
        ),
        'postgres': (
            'SELECT NULL, "outcome" FROM "aq"."aq_check_results" WHERE "dag_id" = %s AND "run_id" = %s AND '
            '"step" = %s AND "name" = %s AND "map_index" = %s AND "logical_date" = %s AND "role" = %s ORDER '
            'BY "created_at" DESC NULLS LAST, "try_number" DESC NULLS LAST LIMIT 1'
        ),
        'snowflake': (
            'SELECT NULL, "OUTCOME" FROM "AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" = %s AND "RUN_ID" = %s AND '
            '"STEP" = %s AND "NAME" = %s AND "MAP_INDEX" = %s AND "LOGICAL_DATE" = %s AND "ROLE" = %s ORDER '
            'BY "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC NULLS LAST LIMIT 1'
        ),
    },
    'champion_date': {
        'duckdb': (
            'SELECT "logical_date" FROM "aq"."aq_check_results" WHERE ("dag_id" = ? AND "step" = ? AND "role" '
            '= ? AND "outcome" = ? AND "map_index" = ?) AND "logical_date" < ? ORDER BY "logical_date" DESC '
            'LIMIT 1'
        ),
        'postgres': (
            'SELECT "logical_date" FROM "aq"."aq_check_results" WHERE ("dag_id" = %s AND "step" = %s AND '
            '"role" = %s AND "outcome" = %s AND "map_index" = %s) AND "logical_date" < %s ORDER BY '
            '"logical_date" DESC NULLS LAST LIMIT 1'
        ),
        'snowflake': (
            'SELECT "LOGICAL_DATE" FROM "AQ"."AQ_CHECK_RESULTS" WHERE ("DAG_ID" = %s AND "STEP" = %s AND '
            '"ROLE" = %s AND "OUTCOME" = %s AND "MAP_INDEX" = %s) AND "LOGICAL_DATE" < %s ORDER BY '
            '"LOGICAL_DATE" DESC NULLS LAST LIMIT 1'
        ),
    },
    'metric_value': {
        'duckdb': (
            'SELECT "value" FROM "aq"."aq_metric_results" WHERE "dag_id" = ? AND "step" = ? AND "name" = ? '
            'AND "map_index" = ? AND "logical_date" = ? ORDER BY "created_at" DESC, "try_number" DESC LIMIT 1'
        ),
        'postgres': (
            'SELECT "value" FROM "aq"."aq_metric_results" WHERE "dag_id" = %s AND "step" = %s AND "name" = %s '
            'AND "map_index" = %s AND "logical_date" = %s ORDER BY "created_at" DESC NULLS LAST, "try_number" '
            'DESC NULLS LAST LIMIT 1'
        ),
        'snowflake': (
            'SELECT "VALUE" FROM "AQ"."AQ_METRIC_RESULTS" WHERE "DAG_ID" = %s AND "STEP" = %s AND "NAME" = %s '
            'AND "MAP_INDEX" = %s AND "LOGICAL_DATE" = %s ORDER BY "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" '
            'DESC NULLS LAST LIMIT 1'
        ),
    },
    'check_series': {
        'duckdb': (
            'WITH "aq_keys" AS (SELECT "step", "map_index", "name", "role" FROM "aq"."aq_check_results" WHERE '
            '"dag_id" = ? AND "step" = ? AND "logical_date" >= ? GROUP BY "step", "map_index", "name", '
            '"role"), "aq_numbered" AS (SELECT "step" AS "aq_step", "map_index" AS "aq_map_index", "name" AS '
            '"aq_name", "role" AS "aq_role", ROW_NUMBER() OVER (ORDER BY "step", "map_index", "name", "role") '
            'AS "aq_key", COUNT(*) OVER () AS "aq_total" FROM "aq_keys"), "aq_page" AS (SELECT "aq_step", '
            '"aq_map_index", "aq_name", "aq_role", "aq_key", "aq_total" FROM "aq_numbered" WHERE "aq_key" > 0 '
            'AND "aq_key" <= 20), "aq_dated" AS (SELECT "logical_date" AS "logical_date", "step" AS "step", '
            '"map_index" AS "map_index", "name" AS "name", "kind" AS "kind", "severity" AS "severity", '
            '"outcome" AS "outcome", "failing_rows" AS "failing_rows", "total_rows" AS "total_rows", CASE '
            'WHEN "outcome" = ? THEN NULL ELSE "message" END AS "message", "run_id" AS "run_id", "item_label" '
            'AS "item_label", "role" AS "role", "aq_key", "aq_total", ROW_NUMBER() OVER (PARTITION BY '
            '"aq_key", "logical_date" ORDER BY "created_at" DESC, "try_number" DESC) AS "aq_rank" FROM '
            '"aq"."aq_check_results" JOIN "aq_page" ON "step" = "aq_step" AND "map_index" = "aq_map_index" '
            'AND "name" = "aq_name" AND "role" = "aq_role" WHERE "dag_id" = ? AND "step" = ? AND '
            '"logical_date" >= ?), "aq_pointed" AS (SELECT "logical_date", "step", "map_index", "name", '
            '"kind", "severity", "outcome", "failing_rows", "total_rows", "message", "run_id", "item_label", '
            '"role", "aq_key", "aq_total", ROW_NUMBER() OVER (PARTITION BY "aq_key" ORDER BY "logical_date" '
            'DESC) AS "aq_point" FROM "aq_dated" WHERE "aq_rank" = 1) SELECT "logical_date", "step", '
            '"map_index", "name", "kind", "severity", "outcome", "failing_rows", "total_rows", "message", '
            '"run_id", "item_label", "role", "aq_key", "aq_total" FROM "aq_pointed" WHERE "aq_point" <= 400'
        ),
        'postgres': (
            'WITH "aq_keys" AS (SELECT "step", "map_index", "name", "role" FROM "aq"."aq_check_results" WHERE '
            '"dag_id" = %s AND "step" = %s AND "logical_date" >= %s GROUP BY "step", "map_index", "name", '
            '"role"), "aq_numbered" AS (SELECT "step" AS "aq_step", "map_index" AS "aq_map_index", "name" AS '
            '"aq_name", "role" AS "aq_role", ROW_NUMBER() OVER (ORDER BY "step", "map_index", "name", "role") '
            'AS "aq_key", COUNT(*) OVER () AS "aq_total" FROM "aq_keys"), "aq_page" AS (SELECT "aq_step", '
            '"aq_map_index", "aq_name", "aq_role", "aq_key", "aq_total" FROM "aq_numbered" WHERE "aq_key" > 0 '
            'AND "aq_key" <= 20), "aq_dated" AS (SELECT "logical_date" AS "logical_date", "step" AS "step", '
            '"map_index" AS "map_index", "name" AS "name", "kind" AS "kind", "severity" AS "severity", '
            '"outcome" AS "outcome", "failing_rows" AS "failing_rows", "total_rows" AS "total_rows", CASE '
            'WHEN "outcome" = %s THEN NULL ELSE "message" END AS "message", "run_id" AS "run_id", '
            '"item_label" AS "item_label", "role" AS "role", "aq_key", "aq_total", ROW_NUMBER() OVER '
            '(PARTITION BY "aq_key", "logical_date" ORDER BY "created_at" DESC NULLS LAST, "try_number" DESC '
            'NULLS LAST) AS "aq_rank" FROM "aq"."aq_check_results" JOIN "aq_page" ON "step" = "aq_step" AND '
            '"map_index" = "aq_map_index" AND "name" = "aq_name" AND "role" = "aq_role" WHERE "dag_id" = %s '
            'AND "step" = %s AND "logical_date" >= %s), "aq_pointed" AS (SELECT "logical_date", "step", '
            '"map_index", "name", "kind", "severity", "outcome", "failing_rows", "total_rows", "message", '
            '"run_id", "item_label", "role", "aq_key", "aq_total", ROW_NUMBER() OVER (PARTITION BY "aq_key" '
            'ORDER BY "logical_date" DESC NULLS LAST) AS "aq_point" FROM "aq_dated" WHERE "aq_rank" = 1) '
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", '
            '"failing_rows", "total_rows", "message", "run_id", "item_label", "role", "aq_key", "aq_total" '
            'FROM "aq_pointed" WHERE "aq_point" <= 400'
        ),
        'snowflake': (
            'WITH "AQ_KEYS" AS (SELECT "STEP", "MAP_INDEX", "NAME", "ROLE" FROM "AQ"."AQ_CHECK_RESULTS" WHERE '
            '"DAG_ID" = %s AND "STEP" = %s AND "LOGICAL_DATE" >= %s GROUP BY "STEP", "MAP_INDEX", "NAME", '
            '"ROLE"), "AQ_NUMBERED" AS (SELECT "STEP" AS "AQ_STEP", "MAP_INDEX" AS "AQ_MAP_INDEX", "NAME" AS '
            '"AQ_NAME", "ROLE" AS "AQ_ROLE", ROW_NUMBER() OVER (ORDER BY "STEP", "MAP_INDEX", "NAME", "ROLE") '
            'AS "AQ_KEY", COUNT(*) OVER () AS "AQ_TOTAL" FROM "AQ_KEYS"), "AQ_PAGE" AS (SELECT "AQ_STEP", '
            '"AQ_MAP_INDEX", "AQ_NAME", "AQ_ROLE", "AQ_KEY", "AQ_TOTAL" FROM "AQ_NUMBERED" WHERE "AQ_KEY" > 0 '
            'AND "AQ_KEY" <= 20), "AQ_DATED" AS (SELECT "LOGICAL_DATE" AS "LOGICAL_DATE", "STEP" AS "STEP", '
            '"MAP_INDEX" AS "MAP_INDEX", "NAME" AS "NAME", "KIND" AS "KIND", "SEVERITY" AS "SEVERITY", '
            '"OUTCOME" AS "OUTCOME", "FAILING_ROWS" AS "FAILING_ROWS", "TOTAL_ROWS" AS "TOTAL_ROWS", CASE '
            'WHEN "OUTCOME" = %s THEN NULL ELSE "MESSAGE" END AS "MESSAGE", "RUN_ID" AS "RUN_ID", '
            '"ITEM_LABEL" AS "ITEM_LABEL", "ROLE" AS "ROLE", "AQ_KEY", "AQ_TOTAL", ROW_NUMBER() OVER '
            '(PARTITION BY "AQ_KEY", "LOGICAL_DATE" ORDER BY "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC '
            'NULLS LAST) AS "AQ_RANK" FROM "AQ"."AQ_CHECK_RESULTS" JOIN "AQ_PAGE" ON "STEP" = "AQ_STEP" AND '
            '"MAP_INDEX" = "AQ_MAP_INDEX" AND "NAME" = "AQ_NAME" AND "ROLE" = "AQ_ROLE" WHERE "DAG_ID" = %s '
            'AND "STEP" = %s AND "LOGICAL_DATE" >= %s), "AQ_POINTED" AS (SELECT "LOGICAL_DATE", "STEP", '
            '"MAP_INDEX", "NAME", "KIND", "SEVERITY", "OUTCOME", "FAILING_ROWS", "TOTAL_ROWS", "MESSAGE", '
            '"RUN_ID", "ITEM_LABEL", "ROLE", "AQ_KEY", "AQ_TOTAL", ROW_NUMBER() OVER (PARTITION BY "AQ_KEY" '
            'ORDER BY "LOGICAL_DATE" DESC NULLS LAST) AS "AQ_POINT" FROM "AQ_DATED" WHERE "AQ_RANK" = 1) '
            'SELECT "LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME", "KIND", "SEVERITY", "OUTCOME", '
            '"FAILING_ROWS", "TOTAL_ROWS", "MESSAGE", "RUN_ID", "ITEM_LABEL", "ROLE", "AQ_KEY", "AQ_TOTAL" '
            'FROM "AQ_POINTED" WHERE "AQ_POINT" <= 400'
        ),
    },
    'metric_series': {
        'duckdb': (
            'WITH "aq_keys" AS (SELECT "step", "map_index", "name" FROM "aq"."aq_metric_results" WHERE '
            '"dag_id" = ? GROUP BY "step", "map_index", "name"), "aq_numbered" AS (SELECT "step" AS '
            '"aq_step", "map_index" AS "aq_map_index", "name" AS "aq_name", ROW_NUMBER() OVER (ORDER BY '
            '"step", "map_index", "name") AS "aq_key", COUNT(*) OVER () AS "aq_total" FROM "aq_keys"), '
            '"aq_page" AS (SELECT "aq_step", "aq_map_index", "aq_name", "aq_key", "aq_total" FROM '
            '"aq_numbered" WHERE "aq_key" > 20 AND "aq_key" <= 40), "aq_dated" AS (SELECT "logical_date" AS '
            '"logical_date", "step" AS "step", "map_index" AS "map_index", "name" AS "name", "kind" AS '
            '"kind", "severity" AS "severity", "outcome" AS "outcome", "value" AS "value", "message" AS '
            '"message", "expected" AS "expected", "run_id" AS "run_id", "item_label" AS "item_label", '
            '"aq_key", "aq_total", ROW_NUMBER() OVER (PARTITION BY "aq_key", "logical_date" ORDER BY '
            '"created_at" DESC, "try_number" DESC) AS "aq_rank" FROM "aq"."aq_metric_results" JOIN "aq_page" '
            'ON "step" = "aq_step" AND "map_index" = "aq_map_index" AND "name" = "aq_name" WHERE "dag_id" = '
            '?), "aq_pointed" AS (SELECT "logical_date", "step", "map_index", "name", "kind", "severity", '
            '"outcome", "value", "message", "expected", "run_id", "item_label", "aq_key", "aq_total", '
            'ROW_NUMBER() OVER (PARTITION BY "aq_key" ORDER BY "logical_date" DESC) AS "aq_point" FROM '
            '"aq_dated" WHERE "aq_rank" = 1) SELECT "logical_date", "step", "map_index", "name", "kind", '
            '"severity", "outcome", "value", "message", "expected", "run_id", "item_label", "aq_key", '
            '"aq_total" FROM "aq_pointed" WHERE "aq_point" <= 60'
        ),
        'postgres': (
            'WITH "aq_keys" AS (SELECT "step", "map_index", "name" FROM "aq"."aq_metric_results" WHERE '
            '"dag_id" = %s GROUP BY "step", "map_index", "name"), "aq_numbered" AS (SELECT "step" AS '
            '"aq_step", "map_index" AS "aq_map_index", "name" AS "aq_name", ROW_NUMBER() OVER (ORDER BY '
            '"step", "map_index", "name") AS "aq_key", COUNT(*) OVER () AS "aq_total" FROM "aq_keys"), '
            '"aq_page" AS (SELECT "aq_step", "aq_map_index", "aq_name", "aq_key", "aq_total" FROM '
            '"aq_numbered" WHERE "aq_key" > 20 AND "aq_key" <= 40), "aq_dated" AS (SELECT "logical_date" AS '
            '"logical_date", "step" AS "step", "map_index" AS "map_index", "name" AS "name", "kind" AS '
            '"kind", "severity" AS "severity", "outcome" AS "outcome", "value" AS "value", "message" AS '
            '"message", "expected" AS "expected", "run_id" AS "run_id", "item_label" AS "item_label", '
            '"aq_key", "aq_total", ROW_NUMBER() OVER (PARTITION BY "aq_key", "logical_date" ORDER BY '
            '"created_at" DESC NULLS LAST, "try_number" DESC NULLS LAST) AS "aq_rank" FROM '
            '"aq"."aq_metric_results" JOIN "aq_page" ON "step" = "aq_step" AND "map_index" = "aq_map_index" '
            'AND "name" = "aq_name" WHERE "dag_id" = %s), "aq_pointed" AS (SELECT "logical_date", "step", '
            '"map_index", "name", "kind", "severity", "outcome", "value", "message", "expected", "run_id", '
            '"item_label", "aq_key", "aq_total", ROW_NUMBER() OVER (PARTITION BY "aq_key" ORDER BY '
            '"logical_date" DESC NULLS LAST) AS "aq_point" FROM "aq_dated" WHERE "aq_rank" = 1) SELECT '
            '"logical_date", "step", "map_index", "name", "kind", "severity", "outcome", "value", "message", '
            '"expected", "run_id", "item_label", "aq_key", "aq_total" FROM "aq_pointed" WHERE "aq_point" <= '
            '60'
        ),
        'snowflake': (
            'WITH "AQ_KEYS" AS (SELECT "STEP", "MAP_INDEX", "NAME" FROM "AQ"."AQ_METRIC_RESULTS" WHERE '
            '"DAG_ID" = %s GROUP BY "STEP", "MAP_INDEX", "NAME"), "AQ_NUMBERED" AS (SELECT "STEP" AS '
            '"AQ_STEP", "MAP_INDEX" AS "AQ_MAP_INDEX", "NAME" AS "AQ_NAME", ROW_NUMBER() OVER (ORDER BY '
            '"STEP", "MAP_INDEX", "NAME") AS "AQ_KEY", COUNT(*) OVER () AS "AQ_TOTAL" FROM "AQ_KEYS"), '
            '"AQ_PAGE" AS (SELECT "AQ_STEP", "AQ_MAP_INDEX", "AQ_NAME", "AQ_KEY", "AQ_TOTAL" FROM '
            '"AQ_NUMBERED" WHERE "AQ_KEY" > 20 AND "AQ_KEY" <= 40), "AQ_DATED" AS (SELECT "LOGICAL_DATE" AS '
            '"LOGICAL_DATE", "STEP" AS "STEP", "MAP_INDEX" AS "MAP_INDEX", "NAME" AS "NAME", "KIND" AS '
            '"KIND", "SEVERITY" AS "SEVERITY", "OUTCOME" AS "OUTCOME", "VALUE" AS "VALUE", "MESSAGE" AS '
            '"MESSAGE", "EXPECTED" AS "EXPECTED", "RUN_ID" AS "RUN_ID", "ITEM_LABEL" AS "ITEM_LABEL", '
            '"AQ_KEY", "AQ_TOTAL", ROW_NUMBER() OVER (PARTITION BY "AQ_KEY", "LOGICAL_DATE" ORDER BY '
            '"CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC NULLS LAST) AS "AQ_RANK" FROM '
            '"AQ"."AQ_METRIC_RESULTS" JOIN "AQ_PAGE" ON "STEP" = "AQ_STEP" AND "MAP_INDEX" = "AQ_MAP_INDEX" '
            'AND "NAME" = "AQ_NAME" WHERE "DAG_ID" = %s), "AQ_POINTED" AS (SELECT "LOGICAL_DATE", "STEP", '
            '"MAP_INDEX", "NAME", "KIND", "SEVERITY", "OUTCOME", "VALUE", "MESSAGE", "EXPECTED", "RUN_ID", '
            '"ITEM_LABEL", "AQ_KEY", "AQ_TOTAL", ROW_NUMBER() OVER (PARTITION BY "AQ_KEY" ORDER BY '
            '"LOGICAL_DATE" DESC NULLS LAST) AS "AQ_POINT" FROM "AQ_DATED" WHERE "AQ_RANK" = 1) SELECT '
            '"LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME", "KIND", "SEVERITY", "OUTCOME", "VALUE", "MESSAGE", '
            '"EXPECTED", "RUN_ID", "ITEM_LABEL", "AQ_KEY", "AQ_TOTAL" FROM "AQ_POINTED" WHERE "AQ_POINT" <= '
            '60'
        ),
    },
    'timeline': {
        'duckdb': (
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", '
            '"failing_rows", "total_rows", "message", "run_id", "item_label", "role" FROM (SELECT '
            '"logical_date" AS "logical_date", "step" AS "step", "map_index" AS "map_index", "name" AS '
            '"name", "kind" AS "kind", "severity" AS "severity", "outcome" AS "outcome", "failing_rows" AS '
            '"failing_rows", "total_rows" AS "total_rows", "message" AS "message", "run_id" AS "run_id", '
            '"item_label" AS "item_label", "role" AS "role", ROW_NUMBER() OVER (PARTITION BY "logical_date", '
            '"step", "map_index", "name", "role" ORDER BY "created_at" DESC, "try_number" DESC) AS "aq_rank" '
            'FROM "aq"."aq_check_results" WHERE "dag_id" = ? AND "logical_date" < ?) AS "aq_latest" WHERE '
            '"aq_rank" = 1 ORDER BY "logical_date" DESC, "step", "map_index", "name" LIMIT 101 OFFSET 0'
        ),
        'postgres': (
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", '
            '"failing_rows", "total_rows", "message", "run_id", "item_label", "role" FROM (SELECT '
            '"logical_date" AS "logical_date", "step" AS "step", "map_index" AS "map_index", "name" AS '
            '"name", "kind" AS "kind", "severity" AS "severity", "outcome" AS "outcome", "failing_rows" AS '
            '"failing_rows", "total_rows" AS "total_rows", "message" AS "message", "run_id" AS "run_id", '
            '"item_label" AS "item_label", "role" AS "role", ROW_NUMBER() OVER (PARTITION BY "logical_date", '
            '"step", "map_index", "name", "role" ORDER BY "created_at" DESC NULLS LAST, "try_number" DESC '
            'NULLS LAST) AS "aq_rank" FROM "aq"."aq_check_results" WHERE "dag_id" = %s AND "logical_date" < '
            '%s) AS "aq_latest" WHERE "aq_rank" = 1 ORDER BY "logical_date" DESC NULLS LAST, "step", '
            '"map_index", "name" LIMIT 101 OFFSET 0'
        ),
        'snowflake': (
            'SELECT "LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME", "KIND", "SEVERITY", "OUTCOME", '
            '"FAILING_ROWS", "TOTAL_ROWS", "MESSAGE", "RUN_ID", "ITEM_LABEL", "ROLE" FROM (SELECT '
            '"LOGICAL_DATE" AS "LOGICAL_DATE", "STEP" AS "STEP", "MAP_INDEX" AS "MAP_INDEX", "NAME" AS '
            '"NAME", "KIND" AS "KIND", "SEVERITY" AS "SEVERITY", "OUTCOME" AS "OUTCOME", "FAILING_ROWS" AS '
            '"FAILING_ROWS", "TOTAL_ROWS" AS "TOTAL_ROWS", "MESSAGE" AS "MESSAGE", "RUN_ID" AS "RUN_ID", '
            '"ITEM_LABEL" AS "ITEM_LABEL", "ROLE" AS "ROLE", ROW_NUMBER() OVER (PARTITION BY "LOGICAL_DATE", '
            '"STEP", "MAP_INDEX", "NAME", "ROLE" ORDER BY "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC '
            'NULLS LAST) AS "AQ_RANK" FROM "AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" = %s AND "LOGICAL_DATE" < '
            '%s) AS "AQ_LATEST" WHERE "AQ_RANK" = 1 ORDER BY "LOGICAL_DATE" DESC NULLS LAST, "STEP", '
            '"MAP_INDEX", "NAME" LIMIT 101 OFFSET 0'
        ),
    },
    'run_rows': {
        'duckdb': (
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", '
            '"failing_rows", "total_rows", "message", "run_id", "item_label", "role", "sample", "try_number" '
            'FROM (SELECT "logical_date" AS "logical_date", "step" AS "step", "map_index" AS "map_index", '
            '"name" AS "name", "kind" AS "kind", "severity" AS "severity", "outcome" AS "outcome", '
            '"failing_rows" AS "failing_rows", "total_rows" AS "total_rows", "message" AS "message", "run_id" '
            'AS "run_id", "item_label" AS "item_label", "role" AS "role", "sample" AS "sample", "try_number" '
            'AS "try_number", ROW_NUMBER() OVER (PARTITION BY "logical_date", "step", "map_index", "name", '
            '"role" ORDER BY "created_at" DESC, "try_number" DESC) AS "aq_rank" FROM "aq"."aq_check_results" '
            'WHERE "dag_id" = ? AND "logical_date" = ? AND "step" IN (?, ?) AND "map_index" = ? AND "role" = '
            '?) AS "aq_latest" WHERE "aq_rank" = 1 ORDER BY "step", "map_index", "name"'
        ),
        'postgres': (
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", '
            '"failing_rows", "total_rows", "message", "run_id", "item_label", "role", "sample", "try_number" '
            'FROM (SELECT "logical_date" AS "logical_date", "step" AS "step", "map_index" AS "map_index", '
            '"name" AS "name", "kind" AS "kind", "severity" AS "severity", "outcome" AS "outcome", '
            '"failing_rows" AS "failing_rows", "total_rows" AS "total_rows", "message" AS "message", "run_id" '
            'AS "run_id", "item_label" AS "item_label", "role" AS "role", "sample" AS "sample", "try_number" '
            'AS "try_number", ROW_NUMBER() OVER (PARTITION BY "logical_date", "step", "map_index", "name", '
            '"role" ORDER BY "created_at" DESC NULLS LAST, "try_number" DESC NULLS LAST) AS "aq_rank" FROM '
            '"aq"."aq_check_results" WHERE "dag_id" = %s AND "logical_date" = %s AND "step" IN (%s, %s) AND '
            '"map_index" = %s AND "role" = %s) AS "aq_latest" WHERE "aq_rank" = 1 ORDER BY "step", '
            '"map_index", "name"'
        ),
        'snowflake': (
            'SELECT "LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME", "KIND", "SEVERITY", "OUTCOME", '
            '"FAILING_ROWS", "TOTAL_ROWS", "MESSAGE", "RUN_ID", "ITEM_LABEL", "ROLE", "SAMPLE", "TRY_NUMBER" '
            'FROM (SELECT "LOGICAL_DATE" AS "LOGICAL_DATE", "STEP" AS "STEP", "MAP_INDEX" AS "MAP_INDEX", '
            '"NAME" AS "NAME", "KIND" AS "KIND", "SEVERITY" AS "SEVERITY", "OUTCOME" AS "OUTCOME", '
            '"FAILING_ROWS" AS "FAILING_ROWS", "TOTAL_ROWS" AS "TOTAL_ROWS", "MESSAGE" AS "MESSAGE", "RUN_ID" '
            'AS "RUN_ID", "ITEM_LABEL" AS "ITEM_LABEL", "ROLE" AS "ROLE", "SAMPLE" AS "SAMPLE", "TRY_NUMBER" '
            'AS "TRY_NUMBER", ROW_NUMBER() OVER (PARTITION BY "LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME", '
            '"ROLE" ORDER BY "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC NULLS LAST) AS "AQ_RANK" FROM '
            '"AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" = %s AND "LOGICAL_DATE" = %s AND "STEP" IN (%s, %s) AND '
            '"MAP_INDEX" = %s AND "ROLE" = %s) AS "AQ_LATEST" WHERE "AQ_RANK" = 1 ORDER BY "STEP", '
            '"MAP_INDEX", "NAME"'
        ),
    },
    'run_rows_release_n': {
        'duckdb': (
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", '
            '"failing_rows", "total_rows", "message", "run_id", "item_label", "role", "sample", "try_number" '
            'FROM (SELECT "logical_date" AS "logical_date", "step" AS "step", "map_index" AS "map_index", '
            '"name" AS "name", "kind" AS "kind", "severity" AS "severity", "outcome" AS "outcome", '
            '"failing_rows" AS "failing_rows", "total_rows" AS "total_rows", "message" AS "message", "run_id" '
            'AS "run_id", NULL AS "item_label", CASE WHEN "kind" = ? THEN ? ELSE ? END AS "role", "sample" AS '
            '"sample", "try_number" AS "try_number", ROW_NUMBER() OVER (PARTITION BY "logical_date", "step", '
            '"map_index", "name" ORDER BY "created_at" DESC, "try_number" DESC) AS "aq_rank" FROM '
            '"aq"."aq_check_results" WHERE "dag_id" = ? AND "logical_date" = ? AND CASE WHEN "kind" = ? THEN '
            '? ELSE ? END = ?) AS "aq_latest" WHERE "aq_rank" = 1 ORDER BY "step", "map_index", "name"'
        ),
        'postgres': (
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", '
            '"failing_rows", "total_rows", "message", "run_id", "item_label", "role", "sample", "try_number" '
            'FROM (SELECT "logical_date" AS "logical_date", "step" AS "step", "map_index" AS "map_index", '
            '"name" AS "name", "kind" AS "kind", "severity" AS "severity", "outcome" AS "outcome", '
            '"failing_rows" AS "failing_rows", "total_rows" AS "total_rows", "message" AS "message", "run_id" '
            'AS "run_id", NULL AS "item_label", CASE WHEN "kind" = %s THEN %s ELSE %s END AS "role", "sample" '
            'AS "sample", "try_number" AS "try_number", ROW_NUMBER() OVER (PARTITION BY "logical_date", '
            '"step", "map_index", "name" ORDER BY "created_at" DESC NULLS LAST, "try_number" DESC NULLS LAST) '
            'AS "aq_rank" FROM "aq"."aq_check_results" WHERE "dag_id" = %s AND "logical_date" = %s AND CASE '
            'WHEN "kind" = %s THEN %s ELSE %s END = %s) AS "aq_latest" WHERE "aq_rank" = 1 ORDER BY "step", '
            '"map_index", "name"'
        ),
        'snowflake': (
            'SELECT "LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME", "KIND", "SEVERITY", "OUTCOME", '
            '"FAILING_ROWS", "TOTAL_ROWS", "MESSAGE", "RUN_ID", "ITEM_LABEL", "ROLE", "SAMPLE", "TRY_NUMBER" '
            'FROM (SELECT "LOGICAL_DATE" AS "LOGICAL_DATE", "STEP" AS "STEP", "MAP_INDEX" AS "MAP_INDEX", '
            '"NAME" AS "NAME", "KIND" AS "KIND", "SEVERITY" AS "SEVERITY", "OUTCOME" AS "OUTCOME", '
            '"FAILING_ROWS" AS "FAILING_ROWS", "TOTAL_ROWS" AS "TOTAL_ROWS", "MESSAGE" AS "MESSAGE", "RUN_ID" '
            'AS "RUN_ID", NULL AS "ITEM_LABEL", CASE WHEN "KIND" = %s THEN %s ELSE %s END AS "ROLE", "SAMPLE" '
            'AS "SAMPLE", "TRY_NUMBER" AS "TRY_NUMBER", ROW_NUMBER() OVER (PARTITION BY "LOGICAL_DATE", '
            '"STEP", "MAP_INDEX", "NAME" ORDER BY "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC NULLS LAST) '
            'AS "AQ_RANK" FROM "AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" = %s AND "LOGICAL_DATE" = %s AND CASE '
            'WHEN "KIND" = %s THEN %s ELSE %s END = %s) AS "AQ_LATEST" WHERE "AQ_RANK" = 1 ORDER BY "STEP", '
            '"MAP_INDEX", "NAME"'
        ),
    },
    'steps': {
        'duckdb': (
            'SELECT DISTINCT "step" FROM "aq"."aq_check_results" WHERE "dag_id" = ? UNION SELECT DISTINCT '
            '"step" FROM "aq"."aq_metric_results" WHERE "dag_id" = ?'
        ),
        'postgres': (
            'SELECT DISTINCT "step" FROM "aq"."aq_check_results" WHERE "dag_id" = %s UNION SELECT DISTINCT '
            '"step" FROM "aq"."aq_metric_results" WHERE "dag_id" = %s'
        ),
        'snowflake': (
            'SELECT DISTINCT "STEP" FROM "AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" = %s UNION SELECT DISTINCT '
            '"STEP" FROM "AQ"."AQ_METRIC_RESULTS" WHERE "DAG_ID" = %s'
        ),
    },
    'overview': {
        'duckdb': (
            'WITH "aq_rows" AS (SELECT 0 AS "aq_table", "dag_id", "logical_date", "step", "map_index", '
            '"name", "outcome", "severity", "created_at", "try_number", "role" AS "role" FROM '
            '"aq"."aq_check_results" WHERE "dag_id" IN (?, ?) UNION ALL SELECT 1 AS "aq_table", "dag_id", '
            '"logical_date", "step", "map_index", "name", "outcome", "severity", "created_at", "try_number", '
            'NULL AS "role" FROM "aq"."aq_metric_results" WHERE "dag_id" IN (?, ?)), "aq_newest" AS (SELECT '
            '"dag_id" AS "aq_dag", MAX("logical_date") AS "aq_date" FROM "aq_rows" GROUP BY "dag_id"), '
            '"aq_latest" AS (SELECT "dag_id", "logical_date", "role", "outcome", "severity", ROW_NUMBER() '
            'OVER (PARTITION BY "aq_table", "dag_id", "step", "map_index", "name", "role" ORDER BY '
            '"created_at" DESC, "try_number" DESC) AS "aq_rank" FROM "aq_rows" JOIN "aq_newest" ON "dag_id" = '
            '"aq_dag" AND "logical_date" = "aq_date") SELECT "dag_id", "logical_date", "outcome", "severity", '
            'COUNT(*) FROM "aq_latest" WHERE "aq_rank" = 1 AND ("role" IS NULL OR "role" <> ?) GROUP BY '
            '"dag_id", "logical_date", "outcome", "severity"'
        ),
        'postgres': (
            'WITH "aq_rows" AS (SELECT 0 AS "aq_table", "dag_id", "logical_date", "step", "map_index", '
            '"name", "outcome", "severity", "created_at", "try_number", "role" AS "role" FROM '
            '"aq"."aq_check_results" WHERE "dag_id" IN (%s, %s) UNION ALL SELECT 1 AS "aq_table", "dag_id", '
            '"logical_date", "step", "map_index", "name", "outcome", "severity", "created_at", "try_number", '
            'NULL AS "role" FROM "aq"."aq_metric_results" WHERE "dag_id" IN (%s, %s)), "aq_newest" AS (SELECT '
            '"dag_id" AS "aq_dag", MAX("logical_date") AS "aq_date" FROM "aq_rows" GROUP BY "dag_id"), '
            '"aq_latest" AS (SELECT "dag_id", "logical_date", "role", "outcome", "severity", ROW_NUMBER() '
            'OVER (PARTITION BY "aq_table", "dag_id", "step", "map_index", "name", "role" ORDER BY '
            '"created_at" DESC NULLS LAST, "try_number" DESC NULLS LAST) AS "aq_rank" FROM "aq_rows" JOIN '
            '"aq_newest" ON "dag_id" = "aq_dag" AND "logical_date" = "aq_date") SELECT "dag_id", '
            '"logical_date", "outcome", "severity", COUNT(*) FROM "aq_latest" WHERE "aq_rank" = 1 AND ("role" '
            'IS NULL OR "role" <> %s) GROUP BY "dag_id", "logical_date", "outcome", "severity"'
        ),
        'snowflake': (
            'WITH "AQ_ROWS" AS (SELECT 0 AS "AQ_TABLE", "DAG_ID", "LOGICAL_DATE", "STEP", "MAP_INDEX", '
            '"NAME", "OUTCOME", "SEVERITY", "CREATED_AT", "TRY_NUMBER", "ROLE" AS "ROLE" FROM '
            '"AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" IN (%s, %s) UNION ALL SELECT 1 AS "AQ_TABLE", "DAG_ID", '
            '"LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME", "OUTCOME", "SEVERITY", "CREATED_AT", "TRY_NUMBER", '
            'NULL AS "ROLE" FROM "AQ"."AQ_METRIC_RESULTS" WHERE "DAG_ID" IN (%s, %s)), "AQ_NEWEST" AS (SELECT '
            '"DAG_ID" AS "AQ_DAG", MAX("LOGICAL_DATE") AS "AQ_DATE" FROM "AQ_ROWS" GROUP BY "DAG_ID"), '
            '"AQ_LATEST" AS (SELECT "DAG_ID", "LOGICAL_DATE", "ROLE", "OUTCOME", "SEVERITY", ROW_NUMBER() '
            'OVER (PARTITION BY "AQ_TABLE", "DAG_ID", "STEP", "MAP_INDEX", "NAME", "ROLE" ORDER BY '
            '"CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC NULLS LAST) AS "AQ_RANK" FROM "AQ_ROWS" JOIN '
            '"AQ_NEWEST" ON "DAG_ID" = "AQ_DAG" AND "LOGICAL_DATE" = "AQ_DATE") SELECT "DAG_ID", '
            '"LOGICAL_DATE", "OUTCOME", "SEVERITY", COUNT(*) FROM "AQ_LATEST" WHERE "AQ_RANK" = 1 AND ("ROLE" '
            'IS NULL OR "ROLE" <> %s) GROUP BY "DAG_ID", "LOGICAL_DATE", "OUTCOME", "SEVERITY"'
        ),
    },
    'newest_dates': {
        'duckdb': (
            'SELECT "dag_id", MAX("logical_date") FROM "aq"."aq_check_results" WHERE "dag_id" IN (?) GROUP BY '
            '"dag_id"'
        ),
        'postgres': (
            'SELECT "dag_id", MAX("logical_date") FROM "aq"."aq_check_results" WHERE "dag_id" IN (%s) GROUP '
            'BY "dag_id"'
        ),
        'snowflake': (
            'SELECT "DAG_ID", MAX("LOGICAL_DATE") FROM "AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" IN (%s) GROUP '
            'BY "DAG_ID"'
        ),
    },
    'newest_rows': {
        'duckdb': (
            'SELECT CAST("logical_date" AS TEXT) AS "logical_date", "step" AS "step", "role" AS "role", '
            '"sample" AS "sample", "message" AS "message" FROM "aq"."aq_check_results" WHERE "dag_id" = ? AND '
            '"run_id" = ? ORDER BY "created_at" DESC, "step", "map_index", "name" LIMIT 50'
        ),
        'postgres': (
            'SELECT CAST("logical_date" AS VARCHAR) AS "logical_date", "step" AS "step", "role" AS "role", '
            '"sample" AS "sample", "message" AS "message" FROM "aq"."aq_check_results" WHERE "dag_id" = %s '
            'AND "run_id" = %s ORDER BY "created_at" DESC NULLS LAST, "step", "map_index", "name" LIMIT 50'
        ),
        'snowflake': (
            'SELECT CAST("LOGICAL_DATE" AS VARCHAR) AS "LOGICAL_DATE", "STEP" AS "STEP", "ROLE" AS "ROLE", '
            '"SAMPLE" AS "SAMPLE", "MESSAGE" AS "MESSAGE" FROM "AQ"."AQ_CHECK_RESULTS" WHERE "DAG_ID" = %s '
            'AND "RUN_ID" = %s ORDER BY "CREATED_AT" DESC NULLS LAST, "STEP", "MAP_INDEX", "NAME" LIMIT 50'
        ),
    },
    'create_deployments': {
        'duckdb': (
            'CREATE TABLE IF NOT EXISTS "aq"."aq_deployments" ("dag_id" TEXT, "run_id" TEXT, "step" TEXT, '
            '"endpoint" TEXT, "version" TEXT, "previous_version" TEXT, "format" TEXT, "target" TEXT, '
            '"storage_uri" TEXT, "model_digest" TEXT, "code_digest" TEXT, "outcome" TEXT, "reason" TEXT, '
            '"smoke_rows" INT, "smoke_latency_ms" DOUBLE, "map_index" INT, "try_number" INT, "spec_hash" TEXT, '
            '"logical_date" TIMESTAMP, "created_at" TIMESTAMP)'
        ),
        'postgres': (
            'CREATE TABLE IF NOT EXISTS "aq"."aq_deployments" ("dag_id" TEXT, "run_id" TEXT, "step" TEXT, '
            '"endpoint" TEXT, "version" TEXT, "previous_version" TEXT, "format" TEXT, "target" TEXT, '
            '"storage_uri" TEXT, "model_digest" TEXT, "code_digest" TEXT, "outcome" TEXT, "reason" TEXT, '
            '"smoke_rows" INT, "smoke_latency_ms" DOUBLE PRECISION, "map_index" INT, "try_number" INT, '
            '"spec_hash" TEXT, "logical_date" TIMESTAMP, "created_at" TIMESTAMP)'
        ),
        'snowflake': (
            'CREATE TABLE IF NOT EXISTS "AQ"."AQ_DEPLOYMENTS" ("DAG_ID" VARCHAR, "RUN_ID" VARCHAR, "STEP" '
            'VARCHAR, "ENDPOINT" VARCHAR, "VERSION" VARCHAR, "PREVIOUS_VERSION" VARCHAR, "FORMAT" VARCHAR, '
            '"TARGET" VARCHAR, "STORAGE_URI" VARCHAR, "MODEL_DIGEST" VARCHAR, "CODE_DIGEST" VARCHAR, "OUTCOME" '
            'VARCHAR, "REASON" VARCHAR, "SMOKE_ROWS" INT, "SMOKE_LATENCY_MS" DOUBLE, "MAP_INDEX" INT, '
            '"TRY_NUMBER" INT, "SPEC_HASH" VARCHAR, "LOGICAL_DATE" TIMESTAMPNTZ, "CREATED_AT" TIMESTAMPNTZ)'
        ),
    },
    'deployments': {
        'duckdb': (
            'SELECT "logical_date" AS "logical_date", "run_id" AS "run_id", "step" AS "step", "endpoint" AS '
            '"endpoint", "version" AS "version", "previous_version" AS "previous_version", "format" AS '
            '"format", "target" AS "target", "storage_uri" AS "storage_uri", "model_digest" AS "model_digest", '
            '"code_digest" AS "code_digest", "outcome" AS "outcome", "reason" AS "reason", "smoke_rows" AS '
            '"smoke_rows", "smoke_latency_ms" AS "smoke_latency_ms", "map_index" AS "map_index", "try_number" '
            'AS "try_number", "created_at" AS "created_at" FROM "aq"."aq_deployments" WHERE "dag_id" = ? AND '
            '"run_id" = ? AND "endpoint" = ? ORDER BY "created_at" DESC, "try_number" DESC, "endpoint" LIMIT 20'
        ),
        'postgres': (
            'SELECT "logical_date" AS "logical_date", "run_id" AS "run_id", "step" AS "step", "endpoint" AS '
            '"endpoint", "version" AS "version", "previous_version" AS "previous_version", "format" AS '
            '"format", "target" AS "target", "storage_uri" AS "storage_uri", "model_digest" AS "model_digest", '
            '"code_digest" AS "code_digest", "outcome" AS "outcome", "reason" AS "reason", "smoke_rows" AS '
            '"smoke_rows", "smoke_latency_ms" AS "smoke_latency_ms", "map_index" AS "map_index", "try_number" '
            'AS "try_number", "created_at" AS "created_at" FROM "aq"."aq_deployments" WHERE "dag_id" = %s AND '
            '"run_id" = %s AND "endpoint" = %s ORDER BY "created_at" DESC NULLS LAST, "try_number" DESC NULLS '
            'LAST, "endpoint" LIMIT 20'
        ),
        'snowflake': (
            'SELECT "LOGICAL_DATE" AS "LOGICAL_DATE", "RUN_ID" AS "RUN_ID", "STEP" AS "STEP", "ENDPOINT" AS '
            '"ENDPOINT", "VERSION" AS "VERSION", "PREVIOUS_VERSION" AS "PREVIOUS_VERSION", "FORMAT" AS '
            '"FORMAT", "TARGET" AS "TARGET", "STORAGE_URI" AS "STORAGE_URI", "MODEL_DIGEST" AS "MODEL_DIGEST", '
            '"CODE_DIGEST" AS "CODE_DIGEST", "OUTCOME" AS "OUTCOME", "REASON" AS "REASON", "SMOKE_ROWS" AS '
            '"SMOKE_ROWS", "SMOKE_LATENCY_MS" AS "SMOKE_LATENCY_MS", "MAP_INDEX" AS "MAP_INDEX", "TRY_NUMBER" '
            'AS "TRY_NUMBER", "CREATED_AT" AS "CREATED_AT" FROM "AQ"."AQ_DEPLOYMENTS" WHERE "DAG_ID" = %s AND '
            '"RUN_ID" = %s AND "ENDPOINT" = %s ORDER BY "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC NULLS '
            'LAST, "ENDPOINT" LIMIT 20'
        ),
    },
    'endpoints': {
        'duckdb': (
            'SELECT "logical_date", "run_id", "step", "endpoint", "version", "previous_version", "format", '
            '"target", "storage_uri", "model_digest", "code_digest", "outcome", "reason", "smoke_rows", '
            '"smoke_latency_ms", "map_index", "try_number", "created_at" FROM (SELECT "logical_date" AS '
            '"logical_date", "run_id" AS "run_id", "step" AS "step", "endpoint" AS "endpoint", "version" AS '
            '"version", "previous_version" AS "previous_version", "format" AS "format", "target" AS "target", '
            '"storage_uri" AS "storage_uri", "model_digest" AS "model_digest", "code_digest" AS "code_digest", '
            '"outcome" AS "outcome", "reason" AS "reason", "smoke_rows" AS "smoke_rows", "smoke_latency_ms" AS '
            '"smoke_latency_ms", "map_index" AS "map_index", "try_number" AS "try_number", "created_at" AS '
            '"created_at", ROW_NUMBER() OVER (PARTITION BY "endpoint" ORDER BY "created_at" DESC, "try_number" '
            'DESC) AS "aq_rank" FROM "aq"."aq_deployments" WHERE "dag_id" = ?) AS "aq_latest" WHERE "aq_rank" ='
            ' 1 ORDER BY "endpoint"'
        ),
        'postgres': (
            'SELECT "logical_date", "run_id", "step", "endpoint", "version", "previous_version", "format", '
            '"target", "storage_uri", "model_digest", "code_digest", "outcome", "reason", "smoke_rows", '
            '"smoke_latency_ms", "map_index", "try_number", "created_at" FROM (SELECT "logical_date" AS '
            '"logical_date", "run_id" AS "run_id", "step" AS "step", "endpoint" AS "endpoint", "version" AS '
            '"version", "previous_version" AS "previous_version", "format" AS "format", "target" AS "target", '
            '"storage_uri" AS "storage_uri", "model_digest" AS "model_digest", "code_digest" AS "code_digest", '
            '"outcome" AS "outcome", "reason" AS "reason", "smoke_rows" AS "smoke_rows", "smoke_latency_ms" AS '
            '"smoke_latency_ms", "map_index" AS "map_index", "try_number" AS "try_number", "created_at" AS '
            '"created_at", ROW_NUMBER() OVER (PARTITION BY "endpoint" ORDER BY "created_at" DESC NULLS LAST, '
            '"try_number" DESC NULLS LAST) AS "aq_rank" FROM "aq"."aq_deployments" WHERE "dag_id" = %s) AS '
            '"aq_latest" WHERE "aq_rank" = 1 ORDER BY "endpoint"'
        ),
        'snowflake': (
            'SELECT "LOGICAL_DATE", "RUN_ID", "STEP", "ENDPOINT", "VERSION", "PREVIOUS_VERSION", "FORMAT", '
            '"TARGET", "STORAGE_URI", "MODEL_DIGEST", "CODE_DIGEST", "OUTCOME", "REASON", "SMOKE_ROWS", '
            '"SMOKE_LATENCY_MS", "MAP_INDEX", "TRY_NUMBER", "CREATED_AT" FROM (SELECT "LOGICAL_DATE" AS '
            '"LOGICAL_DATE", "RUN_ID" AS "RUN_ID", "STEP" AS "STEP", "ENDPOINT" AS "ENDPOINT", "VERSION" AS '
            '"VERSION", "PREVIOUS_VERSION" AS "PREVIOUS_VERSION", "FORMAT" AS "FORMAT", "TARGET" AS "TARGET", '
            '"STORAGE_URI" AS "STORAGE_URI", "MODEL_DIGEST" AS "MODEL_DIGEST", "CODE_DIGEST" AS "CODE_DIGEST", '
            '"OUTCOME" AS "OUTCOME", "REASON" AS "REASON", "SMOKE_ROWS" AS "SMOKE_ROWS", "SMOKE_LATENCY_MS" AS '
            '"SMOKE_LATENCY_MS", "MAP_INDEX" AS "MAP_INDEX", "TRY_NUMBER" AS "TRY_NUMBER", "CREATED_AT" AS '
            '"CREATED_AT", ROW_NUMBER() OVER (PARTITION BY "ENDPOINT" ORDER BY "CREATED_AT" DESC NULLS LAST, '
            '"TRY_NUMBER" DESC NULLS LAST) AS "AQ_RANK" FROM "AQ"."AQ_DEPLOYMENTS" WHERE "DAG_ID" = %s) AS '
            '"AQ_LATEST" WHERE "AQ_RANK" = 1 ORDER BY "ENDPOINT"'
        ),
    },
    'gate_rows': {
        'duckdb': (
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", "value", '
            '"message", "expected", "run_id", "item_label", "try_number" FROM (SELECT "logical_date" AS '
            '"logical_date", "step" AS "step", "map_index" AS "map_index", "name" AS "name", "kind" AS "kind", '
            '"severity" AS "severity", "outcome" AS "outcome", "value" AS "value", "message" AS "message", '
            '"expected" AS "expected", "run_id" AS "run_id", "item_label" AS "item_label", "try_number" AS '
            '"try_number", ROW_NUMBER() OVER (PARTITION BY "logical_date", "step", "map_index", "name" ORDER BY'
            ' "created_at" DESC, "try_number" DESC) AS "aq_rank" FROM "aq"."aq_metric_results" WHERE "dag_id" ='
            ' ? AND (("logical_date" = ? AND "step" = ?) OR ("logical_date" = ? AND "step" = ?))) AS '
            '"aq_latest" WHERE "aq_rank" = 1 ORDER BY "step", "map_index", "name"'
        ),
        'postgres': (
            'SELECT "logical_date", "step", "map_index", "name", "kind", "severity", "outcome", "value", '
            '"message", "expected", "run_id", "item_label", "try_number" FROM (SELECT "logical_date" AS '
            '"logical_date", "step" AS "step", "map_index" AS "map_index", "name" AS "name", "kind" AS "kind", '
            '"severity" AS "severity", "outcome" AS "outcome", "value" AS "value", "message" AS "message", '
            '"expected" AS "expected", "run_id" AS "run_id", "item_label" AS "item_label", "try_number" AS '
            '"try_number", ROW_NUMBER() OVER (PARTITION BY "logical_date", "step", "map_index", "name" ORDER BY'
            ' "created_at" DESC NULLS LAST, "try_number" DESC NULLS LAST) AS "aq_rank" FROM '
            '"aq"."aq_metric_results" WHERE "dag_id" = %s AND (("logical_date" = %s AND "step" = %s) OR '
            '("logical_date" = %s AND "step" = %s))) AS "aq_latest" WHERE "aq_rank" = 1 ORDER BY "step", '
            '"map_index", "name"'
        ),
        'snowflake': (
            'SELECT "LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME", "KIND", "SEVERITY", "OUTCOME", "VALUE", '
            '"MESSAGE", "EXPECTED", "RUN_ID", "ITEM_LABEL", "TRY_NUMBER" FROM (SELECT "LOGICAL_DATE" AS '
            '"LOGICAL_DATE", "STEP" AS "STEP", "MAP_INDEX" AS "MAP_INDEX", "NAME" AS "NAME", "KIND" AS "KIND", '
            '"SEVERITY" AS "SEVERITY", "OUTCOME" AS "OUTCOME", "VALUE" AS "VALUE", "MESSAGE" AS "MESSAGE", '
            '"EXPECTED" AS "EXPECTED", "RUN_ID" AS "RUN_ID", "ITEM_LABEL" AS "ITEM_LABEL", "TRY_NUMBER" AS '
            '"TRY_NUMBER", ROW_NUMBER() OVER (PARTITION BY "LOGICAL_DATE", "STEP", "MAP_INDEX", "NAME" ORDER BY'
            ' "CREATED_AT" DESC NULLS LAST, "TRY_NUMBER" DESC NULLS LAST) AS "AQ_RANK" FROM '
            '"AQ"."AQ_METRIC_RESULTS" WHERE "DAG_ID" = %s AND (("LOGICAL_DATE" = %s AND "STEP" = %s) OR '
            '("LOGICAL_DATE" = %s AND "STEP" = %s))) AS "AQ_LATEST" WHERE "AQ_RANK" = 1 ORDER BY "STEP", '
            '"MAP_INDEX", "NAME"'
        ),
    },
}  # fmt: skip

PARAMS = {
    'create_schema': [],
    'create_checks': [],
    'create_metrics': [],
    'add_role': [],
    'add_code_digest': [],
    'probe': [],
    'move_when_verdicts': [5, 'when', 'when', 'when', '%.when'],
    'delete_key': ['d', DATE, 's', -1, 'check'],
    'delete_items_past': ['d', DATE, 's', 'check', 3],
    'insert_metrics': [],
    'metric_history': ['d', 's', 'm', -1, DATE, 'passed'],
    'run_result': ['d', 'r', 's', 'c', -1, DATE, 'check'],
    'champion_date': ['d', 's', 'when', 'passed', -1, DATE],
    'metric_value': ['d', 's', 'm', -1, DATE],
    'check_series': ['d', 's', DATE, 'passed', 'd', 's', DATE],
    'metric_series': ['d', 'd'],
    'timeline': ['d', DATE],
    'run_rows': ['d', DATE, 'a', 'b', 0, 'when'],
    'run_rows_release_n': ['when', 'when', 'check', 'd', DATE, 'when', 'when', 'check', 'when'],
    'steps': ['d', 'd'],
    'overview': ['d', 'e', 'd', 'e', 'when'],
    'newest_dates': ['d'],
    'newest_rows': ['d', 'r'],
    'create_deployments': [],
    'deployments': ['d', 'r', 'churn'],
    'endpoints': ['d'],
    'gate_rows': ['d', DATE, 'train', DATE, 'score'],
}  # fmt: skip


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_statement_renders_as_pinned(dialect):
    statements = Statements(Warehouse.for_dialect(dialect), "aq")
    built = cases(statements)
    assert set(built) == set(GOLDEN)
    for name, statement in built.items():
        expected = GOLDEN[name][dialect]
        text = statements.render(statement)
        assert text == ("".join(expected) if isinstance(expected, tuple) else expected), name
        assert statement.params == PARAMS[name], name
        marker = statements.warehouse.placeholder
        if name != "insert_metrics":  # (an INSERT's values come per row, with executemany)
            assert text.count(marker) == len(statement.params), name  # a value for every marker, in order


def test_a_keyword_column_is_quoted_in_every_dialect():
    """``sample`` is a column of the checks table and a Snowflake keyword."""
    with pytest.raises(ParseError):
        sqlglot.parse_one("SELECT sample FROM t", read="snowflake")
    for dialect, spelled in (("duckdb", '"sample"'), ("postgres", '"sample"'), ("snowflake", '"SAMPLE"')):
        statements = Statements(Warehouse.for_dialect(dialect), "aq")
        for name in ("create_checks", "run_rows"):
            text = statements.render(cases(statements)[name])
            assert spelled in text and " sample" not in text.lower().replace(spelled.lower(), ""), (dialect, name)
        sqlglot.parse_one(statements.render(cases(statements)["create_checks"]), read=dialect)  # quoted, it parses
