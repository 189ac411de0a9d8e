"""How a `foreach:` item reaches its task instance: as it is when small, by reference when large.

A small item travels inline: in the items task's XCom (the list every item's task instance pulls
whole from the metadata database to find its own entry) and in the step's environment as
``AQ_ITEM``. A large one cannot: Linux refuses one environment string over 128 KiB
(MAX_ARG_STRLEN: ``[Errno 7] Argument list too long``), a pod's whole object must stay well under
etcd's ~1.5 MiB request limit, and an XCom list of megabytes would be pulled by every item.

So an item whose JSON is over :data:`INLINE_ITEM_BYTES`, and the largest items further while the
inline ones together pass :data:`INLINE_LIST_BYTES`, go by reference: the items task writes each
to ``{step}/_items/{index}.json`` in the artifact store, its XCom list holds a small stand-in
(:func:`reference`: the item's grid label and size) in the item's place, and the step gets
``AQ_ITEM_FROM``, that file's location, instead of ``AQ_ITEM`` (the runtime reads it from the
store, which the step reaches already for its inputs and output).

The whole list is bounded too (:data:`MAX_ITEMS_BYTES`): the items task refuses a longer one
before any item runs, naming the largest item.

No pyarrow and no Airflow here: every item's operator is built with it in the task process.
"""

from __future__ import annotations

import json
import math
from typing import Any

# An item's JSON up to this goes in AQ_ITEM: a quarter of Linux's 128 KiB per environment string,
# and a small part of a pod object's budget (etcd takes ~1.5 MiB per request, with the rest of the
# pod's spec and environment in it).
INLINE_ITEM_BYTES = 32 * 1024
# The inline items of one list together: every item's task instance pulls the whole XCom list,
# so n items cost n times this (1,024 items: 1 GiB at most, not 32).
INLINE_LIST_BYTES = 1024 * 1024
# The whole list's JSON (`_items.json`): the items task holds it on the Airflow worker (not in a
# pod) a few times over while it encodes and writes it, and every fan-in reads it whole (its
# `item` column). Data larger than this belongs in a step's output, read through `inputs:`.
MAX_ITEMS_BYTES = 64 * 1024 * 1024

REFERENCE = "aq-airflow/item"  # the only key of a by-reference item's stand-in in the XCom list
ITEMS_FOLDER = "_items"  # in the step's folder: `{index}.json`, one file per by-reference item
PREVIEW_CHARS = 60


def encode(item: Any) -> str:
    """An item as ``AQ_ITEM`` carries it and its file holds it: JSON (ASCII, so its length is
    its size in bytes), keys sorted, anything else as its text."""
    return json.dumps(item, sort_keys=True, default=str)


def non_finite(value: Any) -> tuple[str, float] | None:
    """(where, number) of the first NaN or infinity in ``value``, which JSON cannot hold (an item
    travels as JSON): ``""`` is the value itself, else its keys and indexes as ``a.0.b``; or None.
    Walked without recursion (a spec's literal items and an items task's list alike)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return where, node
        if isinstance(node, dict):
            stack += [(f"{where}.{key}".lstrip("."), item) for key, item in reversed(node.items())]
        elif isinstance(node, list | tuple):
            stack += [(f"{where}.{index}".lstrip("."), item) for index, item in reversed(list(enumerate(node)))]
    return None


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a by-reference item's stand-in. An item of the same shape (a dict
    whose only key is :data:`REFERENCE`) goes by reference itself (:func:`by_reference`), so a
    stand-in is never mistaken for an item."""
    return isinstance(value, dict) and len(value) == 1 and REFERENCE in value


def reference(index: int, size: int, label: str) -> dict:
    """The stand-in in the XCom list for item ``index``: what the grid and results name it by."""
    return {REFERENCE: {"index": index, "bytes": size, "label": label}}


def reference_label(value: dict) -> str:
    """A stand-in's label (an item shaped like a stand-in, never passed as one, has none)."""
    inner = value[REFERENCE]
    return str(inner.get("label", "")) if isinstance(inner, dict) else ""


def by_reference(items: list, texts: list[str]) -> list[int]:
    """The indexes of the items that travel by reference (``texts``: each item's :func:`encode`):
    each one over :data:`INLINE_ITEM_BYTES`, then the largest of the rest until the inline ones
    together are at most :data:`INLINE_LIST_BYTES`. Small items in a list of ordinary size all
    stay inline: their steps read no file."""
    sizes = [len(text) for text in texts]
    far = {i for i, size in enumerate(sizes) if size > INLINE_ITEM_BYTES or is_reference(items[i])}
    inline = sorted((i for i in range(len(items)) if i not in far), key=lambda i: (-sizes[i], i))
    total = sum(sizes[i] for i in inline)
    for index in inline:
        if total <= INLINE_LIST_BYTES:
            break
        far.add(index)
        total -= sizes[index]
    return sorted(far)


def item_file(step_folder: str, index: int | str) -> str:
    """Where a by-reference item's JSON is: ``{step folder}/_items/{index}.json`` (``index`` may
    be the map index template in a pod's environment)."""
    return f"{step_folder.rstrip('/')}/{ITEMS_FOLDER}/{index}.json"


def list_bytes(texts: list[str]) -> int:
    """The size of ``_items.json`` for these items (as ``artifacts.items.write_items`` writes it)."""
    return sum(len(text) for text in texts) + 2 * max(len(texts) - 1, 0) + 32


def too_large(texts: list[str]) -> str | None:
    """Why this item list is refused (its size, the limit, its largest item by index and a
    preview, and what to do), or None when it is within :data:`MAX_ITEMS_BYTES`."""
    total = list_bytes(texts)
    if total <= MAX_ITEMS_BYTES:
        return None
    largest = max(range(len(texts)), key=lambda i: len(texts[i]))
    text = texts[largest]
    preview = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    return (
        f"its {len(texts)} item(s) come to {_mib(total)} of JSON, over the {_mib(MAX_ITEMS_BYTES)} a `foreach:` "
        f"item list may hold; the largest is item {largest} ({_mib(len(text))}: {preview}). Pass large data as a "
        f"step's output (`inputs:`) and make the items small: names, keys or paths into it"
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
