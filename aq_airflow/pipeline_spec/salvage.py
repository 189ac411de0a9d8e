"""What a spec that does not validate still says about when it runs and whom it tells.

A broken live spec becomes a placeholder DAG that keeps firing on the spec's schedule and fails
each run with the spec's errors (``live_dags.placeholder``), so a typo never silently stops a
daily pipeline. The few top-level fields it keeps are read here from the raw YAML mapping, each
on its own and validated by the same pydantic field as in :class:`Pipeline`: a bad
``start_date`` does not cost the good ``schedule`` beside it, and nothing invalid is ever used.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import pydantic

from aq_airflow.pipeline_spec.errors import SpecError
from aq_airflow.pipeline_spec.load import SpecFile, load_document
from aq_airflow.pipeline_spec.models import Pipeline

# the DAG arguments a placeholder keeps (see plan.model.KeptSettings)
KEPT_FIELDS = ("schedule", "start_date", "end_date", "on_failure")


@functools.cache
def _adapter(name: str) -> pydantic.TypeAdapter:
    field = Pipeline.model_fields[name]
    return pydantic.TypeAdapter(Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation)


def salvage(spec_file: SpecFile) -> dict[str, Any] | None:
    """``{field: value}`` for each of :data:`KEPT_FIELDS` the spec states validly (an absent
    field is its default, as in a valid spec); a field with an invalid value is left out (the
    caller falls back to what it knew before). None when the text is no YAML mapping."""
    try:
        data = load_document(spec_file)
    except SpecError:
        return None
    if not isinstance(data, dict):
        return None
    found: dict[str, Any] = {}
    for name in KEPT_FIELDS:
        if name not in data:
            found[name] = Pipeline.model_fields[name].default
            continue
        try:
            value = _adapter(name).validate_python(data[name])
        except pydantic.ValidationError:
            continue
        found[name] = Pipeline._utc(value) if name in ("start_date", "end_date") else value
    start, end = found.get("start_date"), found.get("end_date")
    if start is not None and end is not None and end < start:  # the model refuses it: keep neither
        del found["end_date"]
    return found
