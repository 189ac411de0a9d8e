"""Plans on disk, keyed by content hash.

Airflow's DAG processor parses every file in a fresh process every 30 seconds, so an in-memory
cache never survives to the next parse. This store keeps each plan as JSON (never pickle: a
cache file is data, not code) so that re-parsing an unchanged spec skips YAML, validation and
planning and costs about what the hand-written DAG file costs.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
import os
import tempfile
from typing import Any

from aq_airflow import __version__
from aq_airflow.plan.model import PLAN_TYPES, DagPlan, KeptSettings

# marks an encoded value; a user param dict using this key would decode to a plan object (plain
# data: nothing is imported or run at parse time)
_TAG = "__aq_plan_value__"
_FORMAT = "6"  # part of every key: entries written in another format are never read


def _encode(value: Any) -> Any:
    """``json.dumps`` hook for what JSON has no form for (the C encoder walks the rest).

    Plan objects keep their class name; their tuples (JSON has only lists) are marked too, so a
    plan reads back equal to the one written.
    """
    if isinstance(value, datetime.datetime):
        return {_TAG: "datetime", "iso": value.isoformat()}
    if isinstance(value, enum.Enum):
        return {_TAG: type(value).__name__, "value": value.value}
    if dataclasses.is_dataclass(value) and type(value).__name__ in PLAN_TYPES:
        fields = {f.name: _tuples(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {_TAG: type(value).__name__, **fields}
    raise TypeError(f"a plan holds no {type(value).__name__}")


def _tuples(value: Any) -> Any:
    """Tuples as tagged lists and enums as tagged values (JSON would write them as lists and
    plain strings), at any depth; lists and dicts as they are."""
    if isinstance(value, enum.Enum):
        return {_TAG: type(value).__name__, "value": value.value}
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_tuples(v) for v in value]}
    if isinstance(value, list):
        return [_tuples(v) for v in value]
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _decode(value: dict) -> Any:
    """``json.loads`` hook: plan objects back from their tagged dicts."""
    kind = value.get(_TAG)
    if kind is None:
        return value
    if kind == "datetime":
        return datetime.datetime.fromisoformat(value["iso"])
    if kind == "tuple":
        return tuple(value["items"])
    cls = PLAN_TYPES[kind]
    if issubclass(cls, enum.Enum):
        return cls(value["value"])
    return cls(**{k: v for k, v in value.items() if k != _TAG})


def plan_to_json(plan: DagPlan) -> str:
    return json.dumps(plan, default=_encode)


def plan_from_json(text: str) -> DagPlan:
    return json.loads(text, object_hook=_decode)


def default_folder() -> str:
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.environ.get("AQ_AIRFLOW_CACHE") or os.path.join(home, "aq-airflow-cache")


class PlanStore:
    """A folder of plans; a missing, unreadable or stale entry is a miss, never an error."""

    def __init__(self, folder: str | None = None) -> None:
        self.folder = folder or default_folder()

    def _path(self, *key: str, under: str = "") -> str:
        digest = hashlib.sha256("\0".join((__version__, _FORMAT, *key)).encode("utf-8", "surrogateescape")).hexdigest()
        return os.path.join(self.folder, under, f"{digest}.json")

    def get(self, *key: str) -> DagPlan | None:
        return self._read(self._path(*key))

    def put(self, plan: DagPlan, *key: str) -> None:
        """Store a plan, and what a placeholder keeps of it under the spec's path (``key[0]``):
        see :meth:`last_kept`."""
        self._write(self._path(*key), plan)
        self._write(self._path(key[0], under="kept"), plan.kept_settings())

    def last_kept(self, spec_path: str) -> KeptSettings | None:
        """The schedule, dates and failure callback of the last plan stored for the spec at
        ``spec_path``: what its placeholder keeps when the spec breaks in a way that hides them.
        One small file, read only for a broken spec; written with every plan planned anew (a
        spec brought back to an earlier text reuses that text's plan and leaves the record)."""
        kept = self._read(self._path(spec_path, under="kept"))
        return kept if isinstance(kept, KeptSettings) else None

    def _read(self, path: str) -> Any:
        try:
            with open(path, encoding="utf-8") as handle:
                return plan_from_json(handle.read())
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def _write(self, path: str, value: Any) -> None:
        """Write atomically (temp file, then rename); a read-only disk just means no cache."""
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(json.dumps(value, default=_encode))
            os.replace(temp, path)
        except OSError:
            return
