"""``foreach:``: a step run once per item (an Airflow mapped task per item).

The items come from a literal list, a DAG param (``{param: name}``, a list at run time), or an
upstream step (``{step: name}``): a mapped step's own items (a map -> map chain, per item), or a
step's output (a list object; a table gives one item per row, as a dict, or with ``column:`` one
per distinct value of that column, in order of first appearance).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from aq_airflow.artifacts.item_refs import non_finite
from aq_airflow.pipeline_spec.types import Column, StepName

# Airflow's `[core] max_map_length` default: a mapped task of more items fails when its item
# list is pushed. Literal lists and param defaults are checked against it before run time.
MAX_MAP_LENGTH = 1024


def too_many_items(count: int) -> str:
    """The error of a literal list or param default longer than :data:`MAX_MAP_LENGTH`."""
    return (
        f"{count} items: Airflow maps at most {MAX_MAP_LENGTH} per task (`[core] max_map_length`); a longer list "
        "fails the step's items task. Split the list, or run one item per batch of items"
    )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class ForeachParam(_Model):
    """The items are the value of a DAG param (its default in `params:`, or the run's conf)."""

    param: StepName


class ForeachStep(_Model):
    """The items come from an upstream step: a mapped step's items, or a step's output."""

    step: StepName
    column: Column | None = Field(
        None, description="A table output gives one item per distinct value of this column (else one per row)."
    )


def _json_item(item: Any) -> Any:
    """A literal item JSON can hold: NaN and infinity cannot (an item is passed as JSON)."""
    found = non_finite(item)
    if found is not None:
        raise ValueError(
            f"{json.dumps(found[1])} is no item: an item is passed as JSON (AQ_ITEM, the grid), which cannot hold "
            "NaN or infinity; drop it, or write it as text (`'nan'`) or null"
        )
    return item


Item = Annotated[Any, AfterValidator(_json_item)]
Foreach = Annotated[list[Item], Field(min_length=1, max_length=MAX_MAP_LENGTH)] | ForeachParam | ForeachStep
