"""The dags-folder loader file: the few lines of Python Airflow's DagBag executes, which build
every ``*.aq.yaml`` under the folder through ``aq_airflow.live_dags.load_dags``.

One source for its text: ``aq-airflow init`` writes it in shards (``loader_files``), ``aq-airflow
run`` and the local Airflow of :mod:`aq_airflow.devstack` write the local-run form (every step on
the ``local`` runner, whatever cluster a spec names). Nothing of Airflow is imported here.
"""

from __future__ import annotations

from pathlib import Path

# `cli.specs.written_by_init` finds a dags folder by this mark in a loader's first lines
LOADER_MARK = "(written by `aq-airflow init`)"
_SHARD = '''"""aq-airflow loader, shard {index} of {shards} {mark}.

Builds the *.aq.yaml pipelines under this folder whose path hashes into this shard. Airflow
parses the shards in parallel; a new spec is picked up by its shard at the next parse.
"""

from aq_airflow.live_dags import load_dags

load_dags(globals(), shard=({index}, {shards}))
'''
_LOCAL_RUN = '''"""aq-airflow loader for a local Airflow: every pipeline here runs its steps as local processes."""

from aq_airflow.live_dags import load_dags

load_dags(globals(), local_run=True)
'''
LOCAL_LOADER_NAME = "aq_local_dags.py"


def shard_source(index: int, shards: int) -> str:
    """The loader of shard ``index`` of ``shards``."""
    return _SHARD.format(index=index, shards=shards, mark=LOADER_MARK)


def loader_files(shards: int) -> dict[str, str]:
    """The loader shards ``aq-airflow init`` writes: file name -> source."""
    width = len(str(shards - 1))
    return {f"aq_dags_{i:0{width}d}.py": shard_source(i, shards) for i in range(shards)}


def local_run_source() -> str:
    """The loader that runs every step locally (``load_dags(..., local_run=True)``)."""
    return _LOCAL_RUN


def write_local_loader(dags: Path, name: str = LOCAL_LOADER_NAME) -> Path:
    """Writes the local-run loader into the dags folder ``dags``; returns its path."""
    path = Path(dags) / name
    path.write_text(local_run_source(), encoding="utf-8")
    return path
