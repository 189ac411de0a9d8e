"""The step operator of the local runner: a ``python`` or ``command`` step as a process on the
Airflow worker.

It imports no Kubernetes, warehouse or SQL module (``pod.py`` and ``sql_step.py`` hold those
operators), and no pyarrow until a command step's files are committed: a local task process
parses its DAG once per task instance (each item of a ``foreach:`` step), and a python step's
output on a local store is committed by the runtime and only its manifest is read back here.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from aq_airflow.artifacts.labels import item_label
from aq_airflow.artifacts.manifest import read_local_manifest
from aq_airflow.artifacts.provenance import PROVENANCE
from aq_airflow.artifacts.root import artifacts_root
from aq_airflow.operators.environment import prepared_environment
from aq_airflow.operators.errors import StepFailed
from aq_airflow.operators.lineage import StepLineage
from aq_airflow.plan.model import RunPlan
from aq_airflow.runners import code, environment, local
from aq_airflow.runners.local import LocalProcess
from aq_airflow.runtime import contract, record


class AqLocalStepOperator(StepLineage, BaseOperator):
    """A ``python`` or ``command`` step as a process on the Airflow worker (the ``local`` profile)."""

    template_fields = ("argv", "env_vars")

    def __init__(self, *, plan: RunPlan, item: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.item = item  # a `foreach:` step's item (expanded: one task instance per item)
        self.item_label = item_label(item)
        self.argv = local.command(plan)  # Airflow-templated, as a pod's command is
        self.env_vars = environment.step_environment(plan)

    def render_template(self, content: Any, context: Any, jinja_env=None, seen_oids=None) -> Any:
        """A string without Jinja markup is its own rendering. Airflow compiles every string of a
        template field, and most of this operator's (the runtime's argv, the step's name) are plain:
        compiling them was 7 ms of each `foreach:` item's task, once per item. (Jinja, with the
        default delimiters and text rendering the loader's DAGs use, also drops one trailing
        newline and turns CR LF into LF: such strings still go through it, as they do in a pod.)"""
        if isinstance(content, str) and "{" not in content and "\r" not in content and not content.endswith("\n"):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def execute(self, context: Any) -> Any:
        run = self.plan
        root = artifacts_root(run.artifacts)
        map_index = context["ti"].map_index
        env = {**self.env_vars, **environment.locations(run, root, context["run_id"], map_index)}
        env = environment.item_environment(env, run, self.item, map_index, root, context["run_id"])  # never templated
        for ref in run.secrets:
            if ref.name not in os.environ:
                raise AirflowException(
                    f"step `{run.step}` needs `{ref.name}` (Kubernetes secret {ref.secret}/{ref.key} in a "
                    f"pod); on the local runner export it in the worker's environment"
                )
            env[ref.name] = os.environ[ref.name]
        dag_file = context["dag"].fileloc if context.get("dag") else None
        # a triggered run's conf may hold params past the limits (out of the context, named in the
        # log); the run's code package, as a pod gets it (the runtime puts it first on the path)
        env = prepared_environment(self, env, context)
        compute = run.job.leader.resources if run.job else run.resources  # a spark or ray step: its leader's
        asked = compute.asked if compute else {}
        if asked:  # what the spec asked (profile defaults are no ask)
            note = ", ".join(f"{k}={v}" for k, v in sorted(asked.items()))
            self.log.debug("local runner: resource asks (%s) are not enforced on this worker", note)
        if compute and compute.gpu:
            self.log.warning(
                "local runner: step `%s` asks for a GPU; it runs here on whatever this machine has", run.step
            )
        uri = environment.output_ref(run, map_index).location(root, context["run_id"])
        output = attempt = None
        if "://" in uri or not run.command.runs_runtime:  # a local python step's manifest is read by path
            from aq_airflow.artifacts.store import Location, clear

            output = Location.of(uri)
            attempt = None if run.command.runs_runtime else clear(output)
        # with `code: image`, after the worker's installed packages: the dags folder's root, as the
        # dag-processor has it. Not with a package: its code is the run's, all of it, as in a pod
        # (a module of the dags folder outside the code folder is missing there too, exit code 4)
        dags_root = os.path.dirname(dag_file) if dag_file and contract.CODE_DIGEST not in env else None
        paths = (dags_root, os.environ.get("PYTHONPATH"))
        pythonpath = os.pathsep.join(dict.fromkeys(p for p in paths if p))
        started = record.now()
        with tempfile.TemporaryDirectory(prefix=f"aq-{run.step}-") as workdir:  # a clean cwd, as in a pod
            # the worker's own environment, less any item variables of its own: the item's are these
            inherited = {k: v for k, v in os.environ.items() if k not in environment.ITEM_VARIABLES}
            env = {**inherited, **env, "PYTHONPATH": pythonpath}
            self._process = LocalProcess(local.executable(self.argv), env=env, cwd=workdir)
            try:
                self._process.run()
            except local.ProcessFailed as failure:
                message = code.failure_message(run, failure.returncode, failure.last_line)
                raise StepFailed(message or f"step `{run.step}` failed: {failure}", failure.tail) from None
            except local.StartRefused as failure:
                raise StepFailed(f"step `{run.step}` failed: {failure}", failure.tail) from None
        if run.command.runs_runtime:
            # the manifest this step's runtime just committed, for XCom, its shape checked; its files
            # are not re-read here: every reader after this task verifies them (Location.read_output)
            committed = output.read_manifest(run.step) if output is not None else read_local_manifest(uri, run.step)
            self.committed = committed  # for its OpenLineage facets
            return committed
        from aq_airflow.artifacts.store import BadOutput, commit_files

        made = record.provenance(env, started, record.now())
        try:
            self.committed = commit_files(output, attempt, {"step": run.step, PROVENANCE: made.to_json()})
        except BadOutput as error:  # Parquet files of two schemas, or one that is not Parquet
            raise StepFailed(str(error), []) from None
        return self.committed

    def on_kill(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None:
            process.kill()
