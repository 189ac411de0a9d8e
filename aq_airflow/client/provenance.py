"""What made a run's outputs, as ``aq-airflow show`` and ``diff`` and the quality pages read it:
every step output's committed manifest (each item of a ``foreach:`` step's too) with the
provenance it records (``artifacts.provenance``), the code version the run pinned
(``artifacts.code_package``) and that package's files.

An output written before aq-airflow recorded provenance reads with ``provenance`` None, and a step
whose manifest is missing or unreadable with the reason in ``problem``: readers show them as such,
they never fail on them. No Airflow here (the client layer's rule).
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from dataclasses import asdict, dataclass

from aq_airflow.artifacts.code_package import DIGEST_PREFIX, PinnedCode, read_pin
from aq_airflow.artifacts.labels import item_label, item_name
from aq_airflow.artifacts.provenance import Provenance
from aq_airflow.artifacts.store import MissingArtifact, filesystem
from aq_airflow.client.outputs import MissingOutput, Run

SHORT = 12  # hex digits of a digest shown


def short_digest(digest: str | None) -> str:
    """``sha256:1a2b…`` as its first :data:`SHORT` hex digits; ``-`` for none."""
    return digest.split(":", 1)[-1][:SHORT] if digest else "-"


class MissingPackage(Exception):
    """A run's code package is not in the store (deleted by ``aq-airflow gc``, or another store),
    or is not the package its digest names. The message names it and the fix."""


@dataclass(frozen=True)
class StepRecord:
    """One step output of a run (one item of a mapped step): its manifest and provenance, or why
    there is none (``problem``)."""

    step: str
    map_index: int | None
    label: str | None
    uri: str
    manifest: dict | None
    problem: str | None = None

    @property
    def name(self) -> str:
        """As every place names it: ``train``, or ``evaluate[2:us]`` for an item."""
        return item_name(self.step, self.map_index, self.label)

    @property
    def provenance(self) -> Provenance | None:
        return Provenance.of(self.manifest) if self.manifest else None

    @property
    def kind(self) -> str | None:
        return self.manifest.get("kind") if self.manifest else None

    @property
    def rows(self) -> int | None:
        rows = self.manifest.get("rows") if self.manifest else None
        return rows if isinstance(rows, int) and not isinstance(rows, bool) else None

    @property
    def bytes(self) -> int | None:
        size = self.manifest.get("bytes") if self.manifest else None
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    @property
    def schema(self) -> list[tuple[str, str]] | None:
        """A table's columns as (name, type); None for an output that is no table."""
        schema = self.manifest.get("schema") if self.manifest else None
        if not isinstance(schema, list):
            return None
        return [(str(c[0]), str(c[1])) for c in schema if isinstance(c, list | tuple) and len(c) == 2]

    def as_json(self) -> dict:
        provenance = self.provenance
        return {
            "step": self.step, "map_index": self.map_index, "name": self.name, "uri": self.uri, "kind": self.kind,
            "rows": self.rows, "bytes": self.bytes,
            "schema": [list(c) for c in self.schema] if self.schema is not None else None,
            "provenance": provenance.to_json() if provenance else None, "problem": self.problem,
        }  # fmt: skip


def step_records(run: Run) -> list[StepRecord]:
    """Every step output of ``run`` (each item of a mapped step), in the order the steps ran
    (their provenance's start time; outputs without one after them, by name)."""
    records: list[StepRecord] = []
    for name in sorted(run.steps):
        output = run.step(name)
        if not output.mapped:
            records.append(_record(output, None, None))
            continue
        if not output.items_count:
            why = "no items: an empty item list, or one that cannot be read"
            records.append(StepRecord(name, None, None, output.uri, None, why))
            continue
        labels = _labels(output)
        for index in range(output.items_count):
            records.append(_record(output.item(index), index, labels.get(index)))
    first = {}
    for record in records:
        started = record.provenance.started if record.provenance else None
        if started and (record.step not in first or started < first[record.step]):
            first[record.step] = started
    return sorted(records, key=lambda r: (r.step not in first, first.get(r.step, ""), r.step, r.map_index or 0))


def output_records(root: str, dag_id: str, run_id: str, step: str, map_index: int | None = None) -> list[StepRecord]:
    """The records of one step's output in one run (one listing of the run's folder, not of the
    pipeline's): the item ``map_index`` of a mapped step, or every item when it is None; none when
    the run or step has no folder in the store."""
    from aq_airflow.artifacts.store import Location
    from aq_airflow.client.outputs import Store
    from aq_airflow.client.runs import read_run

    folder = read_run(run_id, Location.of(f"{root.rstrip('/')}/{dag_id}").child(run_id))
    if folder is None or step not in folder.steps:
        return []
    output = Run(Store(root).pipeline(dag_id), folder).step(step)
    if not output.mapped:
        return [_record(output, None, None)]
    labels = _labels(output)
    count = output.items_count or 0
    indexes = range(count) if map_index is None or map_index < 0 else [map_index] if map_index < count else []
    return [_record(output.item(index), index, labels.get(index)) for index in indexes]


def _record(output, index: int | None, label: str | None) -> StepRecord:
    try:
        return StepRecord(output.step, index, label, output.uri, output.manifest)
    except MissingOutput as error:
        return StepRecord(output.step, index, label, output.uri, None, str(error))


def _labels(output) -> dict[int, str]:
    """A mapped step's items' labels by map index (none when its item list cannot be read)."""
    try:
        return {index: item_label(item) for index, item in enumerate(output.items)}
    except (MissingOutput, TypeError):
        return {}


def run_code(run: Run, records: list[StepRecord] | None = None) -> PinnedCode | None:
    """The code version of ``run``: the one it pinned (``_code.json``), else the one its step
    outputs' provenance names (a run that pinned none records it per output); None: the run ran
    no packaged code, or predates code packages."""
    pinned = read_pin(run.folder.location)
    if pinned is not None:
        return pinned
    for record in records if records is not None else step_records(run):
        code = record.provenance.code if record.provenance else None
        if code is not None:
            git = asdict(code.git) if code.git else None
            return PinnedCode(code.digest, code.uri or "", git)
    return None


def package_files(code: PinnedCode, root: str | None = None) -> dict[str, bytes]:
    """The files of a run's code package (path -> contents), its digest checked. The package is
    read where the pin says, else (gone from there: the runs were copied to another store) from
    ``_code/`` under the store ``root``. Raises :class:`MissingPackage`."""
    from aq_airflow.artifacts.code_package import PackageMismatch, confined, location, unpack

    # only where a store keeps packages: a record naming another file (a pipe that never ends) is not read
    candidates = (code.uri, location(root, code.digest) if root else "")
    places = list(dict.fromkeys(uri for uri in candidates if confined(uri, code.digest)))
    with tempfile.SpooledTemporaryFile(max_size=8 * 2**20) as tar:
        uri = actual = None
        for uri in places:
            try:
                fs, path = filesystem(uri)
                with fs.open_input_stream(path) as handle:
                    actual = unpack(uri, handle, tar)
                break
            except (OSError, ValueError, MissingArtifact):  # not there: the next place
                tar.seek(0)
                tar.truncate()
            except PackageMismatch as error:
                raise MissingPackage(str(error)) from None
        if actual is None:
            raise MissingPackage(
                f"the code package {code.digest} is not at {' nor at '.join(places) or 'a recorded location'}: it "
                "was deleted, or the runs were made on another store (pass --artifacts ROOT); its files cannot be "
                "compared"
            )
        if actual != code.digest:
            raise MissingPackage(
                f"the code package at {uri} is not the package {code.digest} (its bytes hash to {actual}): it was "
                "changed after it was stored; delete it, and the next run stores it again"
            )
        tar.seek(0)
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=tar, mode="r:") as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    files[member.name] = handle.read()
    return files


def file_digest(contents: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(contents).hexdigest()
