"""Stores, pipelines, runs and step outputs, as a notebook reads them (see docs/client.md).

Everything is read through the runtime's own readers (:mod:`aq_airflow.artifacts.values`,
:mod:`aq_airflow.artifacts.items`), so a table reads here exactly as the next step would get it,
and only committed outputs (a valid ``_manifest.json``) read at all.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from aq_airflow.artifacts.store import BadOutput, Location, MissingArtifact
from aq_airflow.client.runs import RunFolder, StepFolder, list_runs

# what `read(as_=...)` gives a table as, spelled as the runtime reads a step parameter's annotation
AS = {
    "arrow": None,
    "pandas": "pandas.DataFrame",
    "polars": "polars.DataFrame",
    "dataset": "pyarrow.dataset.Dataset",
    "batches": "Iterator[pyarrow.RecordBatch]",
}


class MissingOutput(MissingArtifact):
    """A step output that is not committed: never written, still being written, failed before its
    manifest, or its manifest unreadable. The message names the step, the run and the path."""


class Store:
    """An artifact store: a local folder, or an ``s3://``, ``gs://``, ``abfs://`` URI (credentials
    from the cloud SDKs' usual environment variables, as for the steps)."""

    def __init__(self, root: str | os.PathLike):
        root = os.fspath(root)
        self.root = root.rstrip("/") if "://" in root else os.path.abspath(root)

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def pipeline(self, dag_id: str) -> Pipeline:
        return Pipeline(self, dag_id)


@dataclass(frozen=True)
class Pipeline:
    """One pipeline (dag_id) in a store."""

    store: Store
    dag_id: str

    @property
    def uri(self) -> str:
        return f"{self.store.root}/{self.dag_id}"

    def runs(self) -> list[Run]:
        """The pipeline's runs in the store, newest first."""
        return [Run(self, folder) for folder in reversed(list_runs(self.store.root, self.dag_id))]

    def run(self, run_id: str) -> Run:
        for run in self.runs():
            if run.run_id == run_id:
                return run
        raise MissingOutput(f"pipeline `{self.dag_id}` has no run `{run_id}` in {self.uri}{self._known()}")

    def latest_run(self, step: str | None = None, successful: bool = False) -> Run:
        """The newest run; with ``step``, the newest holding that step's output committed; with
        ``successful``, the newest whose ``aq-airflow run`` record says it succeeded."""
        for run in self.runs():
            if (step is None or run.has(step)) and (not successful or run.state == "success"):
                return run
        what = " ".join(
            part for part in (
                "successful" if successful else "", "run", f"with a committed output of step `{step}`" if step else ""
            ) if part
        )  # fmt: skip
        raise MissingOutput(f"pipeline `{self.dag_id}` has no {what} in {self.uri}{self._known()}")

    def step(self, name: str) -> StepOutput:
        """Step ``name``'s output in the latest run holding it committed."""
        return self.latest_run(step=name).step(name)

    def _known(self) -> str:
        runs = self.runs()
        return f" (runs: {', '.join(r.run_id for r in runs[:5])}{', ...' if len(runs) > 5 else ''})" if runs else ""


@dataclass(frozen=True)
class Run:
    """One run's folder in the store."""

    pipeline: Pipeline
    folder: RunFolder

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, state={self.state!r}, steps={sorted(self.steps)})"

    @property
    def run_id(self) -> str:
        return self.folder.run_id

    @property
    def uri(self) -> str:
        return self.folder.location.uri

    @property
    def written(self):
        """When the run ended (its record), else when its newest file was written; UTC."""
        return self.folder.written

    @property
    def state(self) -> str | None:
        """``success`` / ``failed`` from the record ``aq-airflow run`` leaves; None without one."""
        return self.folder.state

    @property
    def record(self) -> dict | None:
        """The run record ``aq-airflow run`` leaves (``_run.json``: state, logical date, spec hash,
        times, what a resumed run reused), or None."""
        return self.folder.record

    @property
    def steps(self) -> dict[str, StepFolder]:
        """Every step folder of the run, committed or not (see :class:`StepFolder`)."""
        return self.folder.steps

    def has(self, step: str) -> bool:
        """Whether the run holds ``step``'s output committed (every item, for a mapped step)."""
        return step in self.steps and self.steps[step].committed

    def step(self, name: str) -> StepOutput:
        if name not in self.steps:
            steps = ", ".join(sorted(self.steps)) or "none"
            raise MissingOutput(
                f"step `{name}` has no output in run `{self.run_id}` at {self.uri}/{name} (steps there: {steps})"
            )
        return StepOutput(self, name, self.steps[name].items)


@dataclass(frozen=True)
class StepOutput:
    """One step's output in one run; for a mapped step, ``map_index`` names one item (None: the
    step as a whole, whose items :meth:`item` gives)."""

    run: Run
    step: str
    items_count: int | None = None  # a mapped step's item count (None: not mapped)
    map_index: int | None = None

    def __repr__(self) -> str:
        index = "" if self.map_index is None else f"[{self.map_index}]"
        return f"StepOutput({self.step}{index} of run {self.run.run_id!r})"

    @property
    def mapped(self) -> bool:
        """A ``foreach:`` step as a whole (its items are :meth:`item`)."""
        return self.items_count is not None and self.map_index is None

    @property
    def uri(self) -> str:
        index = "" if self.map_index is None else f"/{self.map_index}"
        return f"{self.run.uri}/{self.step}{index}"

    @property
    def location(self) -> Location:
        """The output's folder, joined to the run folder the listing found (not parsed from
        :attr:`uri` again: see ``Location.child``)."""
        folder = self.run.folder.location.child(self.step)
        return folder if self.map_index is None else folder.child(str(self.map_index))

    @property
    def items(self) -> list:
        """A mapped step's items, in item (map index) order."""
        from aq_airflow.artifacts.items import read_items

        self._need_mapped("items")
        return self._committed(lambda: read_items(self.location, self.step))

    def item(self, map_index: int) -> StepOutput:
        """One item's output of a mapped step."""
        self._need_mapped("item()")
        if not 0 <= map_index < self.items_count:
            raise IndexError(f"step `{self.step}` of run `{self.run.run_id}` has {self.items_count} item(s), "
                             f"no map index {map_index}")  # fmt: skip
        return StepOutput(self.run, self.step, self.items_count, map_index)

    @property
    def manifest(self) -> dict:
        """The committed manifest: ``kind`` (table, object, files, none), ``rows``, ``schema``
        (column, type pairs), ``files``, ``digests``, ``bytes``, timings. For a mapped step, each
        item has its own (``item(i).manifest``). Its shape is checked here; the files are held to it
        (digests, rows, schema) by :meth:`read`."""
        if self.mapped:
            raise TypeError(
                f"step `{self.step}` is mapped ({self.items_count} items): each item has its own manifest; "
                "use .item(i).manifest"
            )
        return self._committed(lambda: self.location.read_manifest(self.step))

    def read(self, map_index: int | None = None, as_: str = "arrow") -> Any:
        """The output as the next step would get it: a table as an Arrow table (``as_``:
        ``pandas``, ``polars``, ``dataset`` for a lazy pyarrow dataset, ``batches`` for an
        iterator of record batches), another object unpickled, a command step's files as their
        folder's URI, nothing as None.

        Unpickling runs code the pickle names: read only stores you trust, as the pipeline's
        own steps do.

        For a mapped step, ``map_index`` reads one item; without it, every item's output as the
        runtime's fan-in gives it: tables as one table whose first column ``item`` names each
        row's item (outputs with an ``item`` column of their own keep it), anything else as the
        list of the items' outputs (:meth:`read_items` always gives the list)."""
        if map_index is not None:
            return self.item(map_index).read(as_=as_)
        _library_for(as_)
        annotation = _annotation(as_)
        if self.mapped:
            from aq_airflow.artifacts.items import gather

            self._check_items()
            return self._committed(lambda: gather(self.location, self.step, annotation))
        from aq_airflow.artifacts.values import read_input

        self.manifest  # noqa: B018 - committed and valid, or an error naming the step and run
        return self._committed(lambda: read_input(self.location, self.step, annotation))

    def read_items(self, as_: str = "arrow") -> list:
        """Every item's output of a mapped step, in item order (see :meth:`read`)."""
        self._need_mapped("read_items()")
        return [self.item(index).read(as_=as_) for index in range(self.items_count)]

    def _check_items(self) -> None:
        for index in range(self.items_count):
            self.item(index).manifest  # noqa: B018 - each item committed, or an error naming it

    def _need_mapped(self, what: str) -> None:
        if not self.mapped:
            raise TypeError(f"step `{self.step}` is not a mapped (`foreach:`) step as a whole: {what} is for those")

    def _committed(self, read):
        try:
            return read()
        except BadOutput as error:  # there, but its manifest or files are not what our writer left
            raise self._missing(str(error), uncommitted=False) from None
        except MissingArtifact as error:
            raise self._missing(f"no committed output ({_cause(error)})") from None
        except ValueError as error:  # a manifest or item list that is not JSON
            raise self._missing(f"its manifest or item list is not valid JSON ({error})") from None
        except ModuleNotFoundError as error:  # a pickled object of a class from the pipeline's own code
            raise ModuleNotFoundError(
                f"step `{self.step}` of run `{self.run.run_id}`: its object needs module `{error.name}` to unpickle; "
                "put the pipeline's code on sys.path (the folder beside its spec), as its steps have it",
                name=error.name,
            ) from None

    def _missing(self, why: str, uncommitted: bool = True) -> MissingOutput:
        index = "" if self.map_index is None else f" (item {self.map_index})"
        where = f"step `{self.step}`{index} of run `{self.run.run_id}` of pipeline `{self.run.pipeline.dag_id}`"
        if not uncommitted:  # the runtime's message names the path and the fix
            return MissingOutput(f"{where}: {why}")
        return MissingOutput(
            f"{where}: {why} at {self.uri}; only committed outputs read (the step failed, is still running, or did "
            "not run)"
        )


def _library_for(as_: str) -> None:
    """``as_="pandas"`` or ``"polars"`` needs that library here: said as such, before any read (a
    missing one would otherwise look like a pickled object's missing module)."""
    library = {"pandas": "pandas", "polars": "polars"}.get(as_)
    if library and importlib.util.find_spec(library) is None:
        raise ModuleNotFoundError(f"as_={as_!r} needs {library}: pip install {library}", name=library)


def _annotation(as_: str) -> str | None:
    if as_ not in AS:
        raise ValueError(f"as_={as_!r}: use one of {', '.join(AS)}")
    return AS[as_]


def _cause(error: MissingArtifact) -> str:
    """The reason in the runtime's message, which names a DAG run the client does not have."""
    text = str(error)
    return text[text.rfind("(") + 1 : -1] if text.endswith(")") else text
