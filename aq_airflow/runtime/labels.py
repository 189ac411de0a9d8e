"""A mapped (``foreach:``) task's label in the grid: its item, short. No pyarrow here: every
item's operator is built with it in the task process."""

from __future__ import annotations

import json
from typing import Any

LABEL_CHARS = 100  # a grid label is short; the whole item is in the task's log and AQ_ITEM


def item_label(item: Any) -> str:
    """The item as the grid shows it: a string as it is, anything else as compact JSON,
    cut to :data:`LABEL_CHARS`."""
    text = item if isinstance(item, str) else json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
