"""How a mapped (``foreach:``) task instance is named: its item, short, as the grid labels it
(:func:`item_label`), and the one name every other place shows it by (:func:`item_name`: the
progress and summary of ``aq-airflow run``, ``aq-airflow results``, the quality pages). No
pyarrow here: every item's operator is built with it in the task process."""

from __future__ import annotations

import json
from typing import Any

from aq_airflow.artifacts.item_refs import is_reference, reference_label

LABEL_CHARS = 100  # a grid label is short; the whole item is in AQ_ITEM (or the file AQ_ITEM_FROM names)


def item_label(item: Any) -> str:
    """The item as the grid shows it: a string as it is, anything else as compact JSON,
    cut to :data:`LABEL_CHARS`; a large item's stand-in (``artifacts.item_refs``) by the label
    the items task gave it from the item itself."""
    return reference_label(item) if is_reference(item) else value_label(item)


def value_label(item: Any) -> str:
    """:func:`item_label` of the item itself (what the items task gives a large item's stand-in)."""
    text = item if isinstance(item, str) else json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def item_name(name: str, map_index: int | None, label: str | None = None) -> str:
    """A step's or task's name for one of its items: ``evaluate[2:us]`` (the map index, then the
    item's label), ``evaluate[2]`` when no label is known, ``evaluate`` when it is not mapped
    (map index None or -1). The index comes first: labels of different items may look alike."""
    if map_index is None or int(map_index) < 0:
        return name
    return f"{name}[{int(map_index)}:{label}]" if label else f"{name}[{int(map_index)}]"
