"""Checks that are not aggregates of the fused scan: `schema` (against the observed columns),
raw `sql` (an escape hatch returning one boolean) and Great Expectations expectations."""

from __future__ import annotations

import json
import re

from aq_airflow.plan.model import CheckPlan
from aq_airflow.quality.evaluate import ERROR, FAILED, PASSED, Outcome, base_fields
from aq_airflow.quality.sql import QualitySQLError, user_query
from aq_airflow.warehouse import ReadSession

_FAMILIES = {
    "int": r"^(u?int\d*|integer|bigint|smallint|tinyint|hugeint|long|short|byte)$",
    "float": r"^(float\d*|double( precision)?|real|halffloat)$",
    "decimal": r"^(decimal|numeric|number)(\(.*\))?\d*$",
    "string": r"^(string|large_string|utf8|large_utf8|text|varchar|character varying|char|character|nvarchar)"
    r"(\(.*\))?$",
    "bool": r"^(bool|boolean)$",
    "date": r"^date(32|64)?(\[.*\])?$",
    "timestamp": r"^(timestamp|datetime)(.*)$",
}


def type_family(name: str) -> str:
    text = name.strip().lower()
    return next((family for family, pattern in _FAMILIES.items() if re.match(pattern, text)), text)


def compatible(expected: str, actual: str) -> bool:
    """Same type family; Snowflake stores every integer as NUMBER, which an `int` matches."""
    wanted, have = type_family(expected), type_family(actual)
    return wanted == have or (wanted == "int" and actual.strip().lower().startswith("number"))


def schema_outcome(spec: CheckPlan, observed: list[tuple[str, str]]) -> Outcome:
    """Expected columns and types against what the data has (schema drift between runs)."""
    base = base_fields(spec)
    have = {name.lower(): kind for name, kind in observed}
    problems = []
    for column, expected in spec.schema.items():
        actual = have.get(column.lower())
        if actual is None:
            problems.append(f"column `{column}` is missing")
        elif not compatible(expected, actual):
            problems.append(f"column `{column}` is {actual}, expected {expected}")
    message = "; ".join(problems) or f"all {len(spec.schema)} expected columns present with their types"
    return Outcome(**base, outcome=FAILED if problems else PASSED, message=message,
                   observed=dict(observed), expected=dict(spec.schema))  # fmt: skip


def sql_outcome(spec: CheckPlan, reader: ReadSession) -> Outcome:
    """A raw `sql:` check: exactly one SELECT (anything else is an error outcome, and never
    reaches the warehouse), run in ``reader`` (the engine's read-only session), which must
    return one boolean."""
    base = base_fields(spec)
    try:
        query = user_query(spec.sql, reader.warehouse.dialect, "a `sql` check")
    except QualitySQLError as error:
        return Outcome(**base, outcome=ERROR, message=str(error))
    try:
        _, rows = reader.fetch(query)
    except Exception as error:
        if reader.warehouse.is_infrastructure_error(error):  # no verdict on the data: the task fails and retries
            raise
        return Outcome(**base, outcome=ERROR, message=f"the query failed: {type(error).__name__}: {error}")
    if len(rows) != 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], bool | int):
        # the shape, never the values: they could be anything the connection can read
        shape = f"{len(rows)} row(s) of {len(rows[0]) if rows else 0} column(s)"
        if len(rows) == 1 and len(rows[0]) == 1:
            shape = f"one {type(rows[0][0]).__name__}"
        return Outcome(**base, outcome=ERROR, message=f"the query must return one boolean; it returned {shape}")
    passed = bool(rows[0][0])
    return Outcome(**base, outcome=PASSED if passed else FAILED, message=f"the query returned {passed}",
                   observed=passed, expected=True)  # fmt: skip


def expectation_class(name: str):
    """The GX Core expectation class for ``expect_column_values_to_not_be_null``-style names."""
    from aq_airflow.pipeline_spec.expectations import great_expectations

    gx = great_expectations()

    camel = "".join(part.capitalize() for part in name.split("_"))
    return getattr(gx.expectations, camel, None)


def gx_outcomes(specs: list[CheckPlan], dataframe, sensitive: set[str]) -> list[Outcome]:
    """Run Great Expectations Core expectations on the data; the result details go in the row."""
    from aq_airflow.pipeline_spec.expectations import great_expectations

    gx = great_expectations()  # the one GX import of validate and the checks tasks: without its Spark support
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # no "Calculating Metrics" bars in task logs (tqdm's own switch is read once, when first imported)
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas("aq")
        .add_dataframe_asset("step_output")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": dataframe})
    )
    outcomes = []
    for spec in specs:
        base = base_fields(spec)
        kind = expectation_class(spec.expect)
        if kind is None:
            outcomes.append(Outcome(**base, outcome=ERROR, message=f"Great Expectations has no `{spec.expect}`"))
            continue
        try:
            result = batch.validate(kind(**spec.kwargs))
        except Exception as error:
            outcomes.append(Outcome(**base, outcome=ERROR, message=f"{type(error).__name__}: {error}"))
            continue
        details = json.loads(json.dumps(result.result, default=str))
        column = spec.column
        sample = details.pop("partial_unexpected_list", None)
        if column and column.lower() in sensitive:
            sample = None
            details.pop("partial_unexpected_counts", None)
            details.pop("partial_unexpected_index_list", None)
        failing = details.get("unexpected_count")
        message = f"{spec.expect}: {PASSED if result.success else FAILED}"
        if failing is not None:
            message += f" ({failing} unexpected of {details.get('element_count')})"
        outcomes.append(Outcome(**base, outcome=PASSED if result.success else FAILED, message=message,
                                observed=details.get("observed_value"), expected=dict(spec.kwargs) or None,
                                failing_rows=failing, rows=details.get("element_count"),
                                sample=[{column or "value": v} for v in sample] if sample else None,
                                details=details))  # fmt: skip
    return outcomes
