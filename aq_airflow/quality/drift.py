"""`schema_change`: a step output's columns against the same step's last output of an earlier
logical date (found by ``client.earlier``), as one check outcome.

No data is scanned: both schemas are the manifests' (``"schema": [[column, type], ...]``, the
Parquet schema as the writer recorded it), so the check costs the same on every warehouse. A
column is the same column by its exact name; its type is the recorded type's text, so
``int64`` → ``int32`` and ``string`` → ``large_string`` are changes too (they are, to a reader of
the Parquet files). Where both manifests record the code that made them (provenance), the
message names the two code digests: the change is tied to the code change that made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aq_airflow.artifacts.provenance import Provenance
from aq_airflow.plan.model import CheckPlan
from aq_airflow.quality.evaluate import ERROR, FAILED, PASSED, Outcome, base_fields

if TYPE_CHECKING:  # what the operator found (``client.earlier``): the quality layer never reads the store
    from aq_airflow.client.earlier import Search

SCHEMA_CHANGE = "schema_change"  # the check kind
FIRST_OUTPUT = "no earlier output to compare"


@dataclass(frozen=True)
class SchemaDiff:
    """Columns added and removed (name, type) and retyped (name, before, after): added in the new
    schema's order, removed and retyped in the old one's."""

    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()

    def kinds(self) -> tuple[str, ...]:
        """The kinds of change that happened (``added``, ``removed``, ``retyped``)."""
        return tuple(kind for kind in ("added", "removed", "retyped") if getattr(self, kind))

    def text(self, kinds: tuple[str, ...]) -> str:
        """``columns added: churn_score (double); retyped: tenure int64 → string`` for ``kinds``."""
        parts = []
        for kind in kinds:
            if kind == "retyped":
                items = [f"{name} {before} → {after}" for name, before, after in self.retyped]
            else:
                items = [f"{name} ({kind_})" for name, kind_ in getattr(self, kind)]
            if items:
                parts.append(f"{kind}: {', '.join(items)}")
        return ("columns " + "; ".join(parts)) if parts else ""

    def to_json(self) -> dict:
        return {
            "added": [list(c) for c in self.added],
            "removed": [list(c) for c in self.removed],
            "retyped": [list(c) for c in self.retyped],
        }


def schema_of(manifest: dict) -> list[tuple[str, str]] | None:
    """A table manifest's (column, type) pairs; None for an output that is not a table."""
    if manifest.get("kind") != "table" or not isinstance(manifest.get("schema"), list):
        return None
    return [(str(name), str(kind)) for name, kind in manifest["schema"]]


def diff(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> SchemaDiff:
    """What changed from ``before`` to ``after`` (see :class:`SchemaDiff`)."""
    old, new = dict(before), dict(after)
    return SchemaDiff(
        added=tuple((name, kind) for name, kind in after if name not in old),
        removed=tuple((name, kind) for name, kind in before if name not in new),
        retyped=tuple((name, kind, new[name]) for name, kind in before if name in new and new[name] != kind),
    )


def _code(provenance: Provenance | None) -> str | None:
    """A code version as a message names it: the package digest, short, and its git commit."""
    code = provenance.code if provenance else None
    if code is None:
        return None
    prefix, _, hexdigest = code.digest.rpartition(":")
    text = f"{prefix + ':' if prefix else ''}{hexdigest[:12]}"
    if code.git is not None:
        text += f" (git {code.git.commit[:10]}{', dirty' if code.git.dirty else ''})"
    return text


def schema_change_outcome(spec: CheckPlan, manifest: dict, search: Search) -> Outcome:
    """The check's outcome for this run's committed ``manifest`` against what ``search`` found."""
    base = base_fields(spec)
    watched = tuple(spec.changes)
    current = schema_of(manifest)
    if current is None:
        return Outcome(**base, outcome=ERROR, message=f"the step's output is a {manifest.get('kind')}, which has no "
                       "columns: `schema_change` compares tables")  # fmt: skip
    earlier = search.found
    if earlier is None:
        note = f" among the {search.read} newest runs' outputs (the search's limit)" if search.bounded else ""
        return Outcome(**base, outcome=PASSED, message=f"{FIRST_OUTPUT}: this is the step's first committed output "
                       f"of an earlier logical date{note}", observed=dict(current),
                       details={"on": list(watched), "compared_with": None, "searched": search.read})  # fmt: skip
    previous = schema_of(earlier.manifest)
    changes = diff(previous or [], current)
    date = earlier.date.isoformat()
    dated = f"logical date {date}" if earlier.by_provenance else f"run id time {date}, no provenance"
    against = f"compared with run {earlier.run_id} ({dated})"
    if previous is None:
        against += f"; its output was a {earlier.manifest.get('kind')}, not a table"
    code_before, code_now = _code(earlier.provenance), _code(Provenance.of(manifest))
    if code_before or code_now:
        same = code_before == code_now
        against += f"; code {code_now} (unchanged)" if same else f"; code {code_before} → {code_now}"
    failing = tuple(kind for kind in changes.kinds() if kind in watched)
    ignored = tuple(kind for kind in changes.kinds() if kind not in watched)
    if failing:
        message = changes.text(failing)
        if ignored:
            message += f" (also {changes.text(ignored).removeprefix('columns ')}, not in `on`)"
    elif ignored:
        message = f"{changes.text(ignored)}, not in `on` ({', '.join(watched)})"
    else:
        message = f"the same {len(current)} columns and types"
    details = {
        "on": list(watched),
        "changes": changes.to_json(),
        "compared_with": {"run_id": earlier.run_id, "date": date, "dated_by": earlier.dated_by},
        "code": {"before": code_before, "now": code_now},
        "searched": search.read,
    }
    return Outcome(**base, outcome=FAILED if failing else PASSED, message=f"{message}; {against}",
                   observed=dict(current), expected=dict(previous or []), details=details)  # fmt: skip
