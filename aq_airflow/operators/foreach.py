"""A `foreach:` step's items task: its item list for this run, resolved before any item runs.

The artifact store (pyarrow) is imported when the items task runs, not when the module is: every
item's task process builds the whole DAG, this operator included, and runs one item.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from aq_airflow.artifacts.item_refs import non_finite
from aq_airflow.artifacts.labels import item_label, item_name
from aq_airflow.artifacts.root import artifacts_root
from aq_airflow.plan.model import ItemsPlan
from aq_airflow.runtime.param_limits import param_problem

DEFAULT_MAX_MAP_LENGTH = 1024  # Airflow's `[core] max_map_length` default


def max_map_length() -> int:
    from airflow.configuration import conf

    return conf.getint("core", "max_map_length", fallback=DEFAULT_MAX_MAP_LENGTH)


def non_finite_item(step: str, items: list) -> str | None:
    """Why the items cannot be a mapped step's (one holds NaN or infinity, which JSON cannot: an
    item is passed as JSON, to the grid, ``AQ_ITEM`` and the item list), naming the step and the
    item; or None."""
    for index, item in enumerate(items):
        found = non_finite(item)
        if found is not None:
            where, number = found
            shown = json.dumps(number)  # NaN, Infinity, -Infinity
            held = f"is {shown}" if not where else f"holds {shown} at `{where}`"
            return (
                f"step `{step}`: item {item_name(step, index, item_label(item))} {held}, which JSON cannot hold "
                "(an item is passed as JSON: to the step as AQ_ITEM, the grid and the item list); drop the item, "
                "or give the value as null or text"
            )
    return None


class AqItemsOperator(BaseOperator):
    """Resolves a mapped step's items (a literal list, a param, an upstream step's output or
    items), records them as ``_items.json`` in the step's folder (fan-ins read them there) and
    returns them: the step's run, checks and metrics expand over this task's output.

    Large items travel by reference (``artifacts.item_refs``): each is written to its own file
    in the step's folder and the returned list (the XCom) holds a small stand-in in its place.
    A list over ``MAX_ITEMS_BYTES`` is refused here, before anything is written or any item runs."""

    def __init__(self, *, plan: ItemsPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Any) -> list:
        from aq_airflow.artifacts import item_refs
        from aq_airflow.artifacts.labels import value_label

        plan = self.plan
        items = self.resolve(context)
        limit = max_map_length()
        if len(items) > limit:
            raise AirflowException(
                f"step `{plan.step}`: {len(items)} items, more than Airflow maps per task ([core] max_map_length = "
                f"{limit}); split the list, or raise max_map_length in airflow.cfg"
            )
        not_json = non_finite_item(plan.step, items)
        if not_json:
            raise AirflowException(not_json)
        texts = [item_refs.encode(item) for item in items]  # what AQ_ITEM and the grid show: JSON values
        refused = item_refs.too_large(texts)
        if refused:
            raise AirflowException(f"step `{plan.step}`: {refused}")
        items = [json.loads(text) for text in texts]
        far = item_refs.by_reference(items, texts)
        from aq_airflow.artifacts.items import write_item_files, write_items
        from aq_airflow.artifacts.store import Location

        folder = Location.of(plan.output.location(artifacts_root(plan.artifacts), context["run_id"]))
        write_item_files(folder, {index: texts[index] for index in far})  # before the list that names them
        write_items(folder, items)
        self.log.info("step `%s`: %d item(s)", plan.step, len(items))
        for index in far:
            self.log.info(
                "step `%s`: item %d (%d bytes of JSON) goes by reference, as %s",
                plan.step, index, len(texts[index]), item_refs.item_file(folder.uri, index),
            )  # fmt: skip
        for index in far:
            items[index] = item_refs.reference(index, len(texts[index]), value_label(items[index]))
        return items

    def resolve(self, context: Any) -> list:
        foreach, step = self.plan.foreach, self.plan.step
        if foreach.items is not None:
            return list(foreach.items)
        if foreach.param is not None:
            value = context["params"][foreach.param]
            problem = param_problem(foreach.param, value)
            if problem:  # a triggered run's conf may hold anything
                raise AirflowException(f"step `{step}`: `foreach: {{param: {foreach.param}}}`: {problem}")
            if not isinstance(value, list | tuple):
                raise AirflowException(
                    f"step `{step}`: `foreach: {{param: {foreach.param}}}` needs a list; the param is a "
                    f"{type(value).__name__}: {value!r:.200}"
                )
            return list(value)
        from aq_airflow.artifacts.items import read_items
        from aq_airflow.artifacts.store import Location, MissingArtifact
        from aq_airflow.artifacts.values import read_input

        root = artifacts_root(self.plan.artifacts)
        location = Location.of(self.plan.source.location(root, context["run_id"]))
        try:
            if foreach.step_mapped:  # a map -> map chain: the same items as the mapped step
                return read_items(location, foreach.step)
            value = read_input(location, foreach.step, None)
        except MissingArtifact as missing:
            raise AirflowException(f"step `{step}`: {missing}") from None
        if hasattr(value, "to_pylist") and hasattr(value, "column_names"):  # a table
            if foreach.column is None:
                return value.to_pylist()  # one item per row, as a dict
            if foreach.column not in value.column_names:
                raise AirflowException(
                    f"step `{step}`: `foreach: {{step: {foreach.step}, column: {foreach.column}}}`: the output has "
                    f"no column `{foreach.column}` (columns: {', '.join(value.column_names)})"
                )
            return list(dict.fromkeys(value.column(foreach.column).to_pylist()))  # distinct, in order
        if isinstance(value, list | tuple):
            return list(value)
        raise AirflowException(
            f"step `{step}`: `foreach: {{step: {foreach.step}}}` needs a list or a table; `{foreach.step}` returned "
            f"a {type(value).__name__}"
        )
