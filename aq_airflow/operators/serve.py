"""The ``serve`` task of a step with `serve:`: promote its model to the endpoint, or leave the
endpoint as it was, and record the attempt either way.

One lifecycle for both places an endpoint lives (:class:`ServeTask`), the place itself a subclass:

1. read the step's committed model (its manifest held to its files) and ``smoke_rows`` rows of
   the sample table; the version is derived from the model file's digest, the format and the
   signature (``ModelVersion.of``);
2. write the model in its format's server layout with its signature at the version's folder
   (``serving.layout``; a version folder already complete is not written again);
3. :meth:`ServeTask.deploy`: point the endpoint at the version and smoke-test it over the Open
   Inference Protocol (a subclass's job: a local model server, a KServe InferenceService), which
   on failure puts the endpoint back on ``previous`` itself and raises :class:`DeploymentFailed`;
4. on success, replace ``current.json`` (``serving.promotion``): only now is the version the
   endpoint's (a version that was the endpoint's already leaves it as it is: ``unchanged``);
5. record a row in ``aq_deployments`` (promoted, unchanged, rolled back or failed, with the
   reason and the smoke test's latency); a failure then fails the task with the reason.

The task runs after the step's gating checks and metrics (the planner wires it as publish):
an error-severity failure or a false `when:` means it never runs, and the endpoint keeps its model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NoReturn

from airflow.exceptions import AirflowException
from airflow.models import BaseOperator
from airflow.sdk import BaseHook

from aq_airflow.artifacts.manifest import MissingArtifact
from aq_airflow.artifacts.model_repository import ModelVersion, Promotion
from aq_airflow.artifacts.provenance import Provenance
from aq_airflow.artifacts.root import artifact_uri, artifacts_root
from aq_airflow.artifacts.store import Location
from aq_airflow.operators.quality import run_date
from aq_airflow.plan.model import ServePlan
from aq_airflow.results.rows import DEPLOYMENTS_TABLE, KEY, DeploymentOutcome, DeploymentRow, utcnow
from aq_airflow.results.store import ResultsStore
from aq_airflow.serving.layout import LayoutError, local_folder, read_model, sample_rows, write_version
from aq_airflow.serving.model_server import ModelServer, ModelServerError
from aq_airflow.serving.oip import SmokeFailed, SmokeResult, smoke_test
from aq_airflow.serving.promotion import current_uri, read_current, write_current
from aq_airflow.serving.signature import Signature
from aq_airflow.warehouse import Warehouse
from aq_airflow.warehouse.secrets import connection_secrets, mask

#: the longest reason ``aq_deployments`` keeps (its head says what failed, its tail, a server
#: log's last lines, why)
REASON_CHARS = 2000


class DeploymentFailed(Exception):
    """A promotion that did not happen: ``outcome`` says whether the endpoint was changed and put
    back (``rolled_back``) or never changed or could not be put back (``failed``)."""

    def __init__(self, reason: str, outcome: DeploymentOutcome = DeploymentOutcome.FAILED):
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome


class ServeTask(BaseOperator, ABC):
    """The lifecycle above; :meth:`deploy` and :meth:`target` are the place's."""

    template_fields = ()
    ui_color = "#d9c8f0"
    #: whether a passed :meth:`deploy` has changed what the endpoint serves (a KServe
    #: InferenceService) or only tested the version (the local model repository, which changes
    #: with ``current.json``)
    live_on_deploy = True

    def __init__(self, *, plan: ServePlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    @property
    def root(self) -> str:
        """The artifact store root (the spec's, else the worker's)."""
        return artifacts_root(self.plan.artifacts)

    @abstractmethod
    def target(self) -> str:
        """Where the endpoint lives, as ``aq_deployments.target`` records it."""

    @abstractmethod
    def deploy(
        self, context: Any, version: ModelVersion, storage_uri: str, previous: Promotion | None,
        rows: Any, signature: Signature,
    ) -> SmokeResult:  # fmt: skip
        """Point the endpoint at ``version`` (at ``storage_uri``) and smoke-test it with ``rows``
        (a pyarrow table of the signature's columns); on any failure put it back on ``previous``
        (None: the endpoint did not exist) and raise :class:`DeploymentFailed`."""

    def execute(self, context: Any) -> Any:
        plan = self.plan
        model_location = Location.of(artifact_uri(plan.artifacts, plan.model, context["run_id"]))
        try:
            manifest = model_location.read_output(plan.step)
        except MissingArtifact as error:  # no model: no version to record an attempt of
            raise AirflowException(f"endpoint `{plan.endpoint}` was not promoted: {error}") from None
        row = {
            "dag_id": context["dag"].dag_id,
            "run_id": context["run_id"],
            "step": plan.step,
            "endpoint": plan.endpoint,
            "version": None,  # known once the signature is
            "format": plan.format,
            "target": self.target(),
            "try_number": context["ti"].try_number,
            "spec_hash": plan.spec_hash,
            "logical_date": run_date(context),
        }
        problem = None
        if manifest["kind"] != "object":
            what = "nothing (None)" if manifest["kind"] == "none" else f"a {manifest['kind']}"
            problem = (
                f"step `{plan.step}` returned {what}, not a model: `serve` promotes the model object the step "
                "returns (return the fitted model from the step's function)"
            )
        digest = manifest["digests"][manifest["files"][0]] if manifest.get("digests") and manifest["files"] else None
        if problem is None and digest is None:
            problem = f"step `{plan.step}`'s output records no digest: re-run the step to serve its model"
        if problem is not None:  # an attempt all the same: recorded, then the task fails with the reason
            self.fail(row, DeploymentOutcome.FAILED, problem)
        made = Provenance.of(manifest)
        row.update(
            model_digest=digest,
            code_digest=made.code.digest if made is not None and made.code is not None else None,
        )
        try:  # an unreadable current.json too is an attempt recorded as failed
            try:
                previous = read_current(self.root, plan.endpoint)
            except ValueError as error:  # not left as it is: its endpoint would never be promoted again
                raise DeploymentFailed(
                    f"{error}: the endpoint's promoted version is unknown; put back the current.json the serve "
                    "task wrote, or delete it to have this task promote its model"
                ) from None
            row["previous_version"] = previous.version if previous is not None else None
            self.check_owner(previous, row["dag_id"])
            model = read_model(model_location, manifest, plan.step)
            rows, signature = sample_rows(plan, context["run_id"], model)
            version = ModelVersion.of(plan.endpoint, digest, plan.format, signature.to_json())
            row["version"] = version.version
            storage_uri = write_version(model, plan.format, version, self.root, signature, rows)
            row.update(storage_uri=storage_uri, smoke_rows=rows.num_rows)
            result = self.deploy(context, version, storage_uri, previous, rows, signature)
        except DeploymentFailed as failure:
            self.fail(row, failure.outcome, failure.reason)
        except (LayoutError, MissingArtifact) as error:  # the model, its sample: the message says what to change
            self.fail(row, DeploymentOutcome.FAILED, str(error))
        except Exception as error:  # current.json, the store, the version folder: nothing changed
            self.record_or_log(row, DeploymentOutcome.FAILED, f"{type(error).__name__}: {error}")
            raise
        row["smoke_latency_ms"] = result.latency_ms
        # the endpoint's version already: current.json keeps the run that promoted it
        unchanged = previous is not None and (previous.version, previous.storage_uri) == (version.version, storage_uri)
        if not unchanged:
            try:
                write_current(self.root, Promotion(
                    endpoint=plan.endpoint, version=version.version, format=str(plan.format),
                    storage_uri=storage_uri, model_digest=digest, dag_id=row["dag_id"], run_id=row["run_id"],
                    step=plan.step, promoted_at=utcnow().isoformat() + "Z", code_digest=row["code_digest"],
                ))  # fmt: skip
            except Exception as error:
                self.fail(row, DeploymentOutcome.FAILED, self.unrecorded(version, previous, error))
        outcome = DeploymentOutcome.UNCHANGED if unchanged else DeploymentOutcome.PROMOTED
        self.record(row, outcome, None)
        self.log.info("endpoint `%s` serves %s (%s), smoke test %.1f ms", plan.endpoint, version.version,
                      storage_uri, result.latency_ms)  # fmt: skip
        return {
            "endpoint": plan.endpoint,
            "version": version.version,
            "storage_uri": storage_uri,
            "outcome": outcome.value,
        }

    def check_owner(self, previous: Promotion | None, dag_id: str) -> None:
        """Refuse an endpoint another pipeline's (or step's) promotion holds: replacing its
        ``current.json`` would take it over without a word."""
        if previous is None or (previous.dag_id, previous.step) == (dag_id, self.plan.step):
            return
        raise DeploymentFailed(
            f"endpoint `{self.plan.endpoint}` belongs to {previous.dag_id}.{previous.step} (it promoted "
            f"{previous.version}, recorded in {current_uri(self.root, self.plan.endpoint)}): choose another endpoint "
            "in `serve:`, or retire it there (remove its `serve:` and delete that current.json)"
        )

    def unrecorded(self, version: ModelVersion, previous: Promotion | None, error: Exception) -> str:
        """Why a promotion whose deployment passed is not recorded: what the endpoint serves now."""
        was = previous.version if previous is not None else "no model"
        serves = (
            f"the endpoint serves {version.version} now, while current.json still names {was}"
            if self.live_on_deploy
            else f"{version.version} passed its smoke test; the endpoint still serves {was}"
        )
        return (
            f"{current_uri(self.root, self.plan.endpoint)} could not be written ({type(error).__name__}: {error}): "
            f"{serves}. Let the store accept writes and run the task again"
        )

    def fail(self, row: dict, outcome: DeploymentOutcome, reason: str) -> NoReturn:
        """Record the failed attempt and fail the task with ``reason`` (no traceback)."""
        self.record_or_log(row, outcome, reason)
        raise AirflowException(f"endpoint `{self.plan.endpoint}` was not promoted: {reason}") from None

    def record_or_log(self, row: dict, outcome: DeploymentOutcome, reason: str) -> None:
        """:meth:`record` a failed attempt; a results store that refuses it is logged, so the task
        still fails with the deployment's own reason."""
        try:
            self.record(row, outcome, reason)
        except Exception as error:
            self.log.error("the attempt could not be recorded in %s: %s: %s", DEPLOYMENTS_TABLE,
                           type(error).__name__, error)  # fmt: skip

    def record(self, row: dict, outcome: DeploymentOutcome, reason: str | None) -> None:
        """The attempt's row in ``aq_deployments`` (one per try); its reason capped to
        ``REASON_CHARS`` characters (its head and tail) and with the connection's secrets and any
        URI's password masked, as the quality pages show messages."""
        conn = BaseHook.get_connection(self.plan.warehouse)
        if reason is not None:
            reason = mask(reason, connection_secrets(conn))
            if len(reason) > REASON_CHARS:  # what failed (its head) and why (a log's tail)
                reason = f"{reason[: REASON_CHARS // 4]} … {reason[-(REASON_CHARS * 3 // 4 - 3) :]}"
        store = ResultsStore(Warehouse.from_connection(conn), self.plan.results_schema)
        store.ensure_tables()
        final = DeploymentRow.of({**row, "outcome": outcome, "reason": reason, "created_at": utcnow()})
        key = {k: getattr(final, k) for k in KEY[DEPLOYMENTS_TABLE]}
        store.replace(DEPLOYMENTS_TABLE, key, [final])


class AqLocalServeOperator(ServeTask):
    """The endpoint is the store's model repository (``_models/<endpoint>/``), served by
    ``aq-airflow serve``; the smoke test runs the version in a local model server on loopback.

    Nothing serves the endpoint while the task runs, so there is nothing to put back: the version
    is started alone (from a local copy when the store is an object store), smoke-tested and
    stopped, and the endpoint changes only through ``current.json``, which the lifecycle replaces
    after a pass. A failure is ``failed`` (never ``rolled_back``)."""

    live_on_deploy = False

    def target(self) -> str:
        return "local"

    def deploy(
        self, context: Any, version: ModelVersion, storage_uri: str, previous: Promotion | None,
        rows: Any, signature: Signature,
    ) -> SmokeResult:  # fmt: skip
        try:
            with local_folder(storage_uri) as folder, ModelServer({version.endpoint: folder}) as server:
                return smoke_test(server.url, version.endpoint, rows, signature)
        except (ModelServerError, SmokeFailed) as error:
            raise DeploymentFailed(f"{version.version} at {storage_uri}: {error}") from None
