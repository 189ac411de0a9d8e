"""The ``serve`` task on Kubernetes: point the endpoint's KServe InferenceService at the new
version, watch it to Ready, smoke-test it, and put it back on any failure.

Its own module: only DAGs with a `serve:` step on a Kubernetes profile (and their workers) import
it. The body and how its status reads are ``runners.inference_service``'s; the lifecycle around
``deploy`` (the version folder, ``current.json``, the ``aq_deployments`` row) is
``operators.serve.ServeTask``'s. Everything goes through the cncf provider's ``KubernetesHook``
and the connection the profile names.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aq_airflow.artifacts.model_repository import ModelVersion, Promotion
from aq_airflow.operators.serve import DeploymentFailed, ServeTask
from aq_airflow.plan.model import ServePlan, ServingMode
from aq_airflow.results.rows import DeploymentOutcome
from aq_airflow.runners import inference_service as isvc
from aq_airflow.runners.custom_resource import DAG_LABEL, MANAGED_BY, STEP_LABEL, label_value
from aq_airflow.serving import oip
from aq_airflow.serving.oip import SmokeResult
from aq_airflow.serving.signature import Signature

# how long a rollout may take when the task has no timeout (the spec's `timeout:` is the task's
# execution_timeout; then half of it is the rollout's, the other half kept to put the endpoint back)
DEFAULT_ROLLOUT_SECONDS = 600


class AqInferenceServiceOperator(ServeTask):
    """The endpoint is a KServe InferenceService named as the endpoint in the profile's namespace.

    :meth:`deploy` reads the live InferenceService first: its ``storageUri`` is what a failure puts
    back (the live object's, not ``current.json``'s: the cluster is what serves). One that
    aq-airflow does not manage, or that another pipeline or step promotes to (its ``dag_id`` and
    ``aq-airflow/step`` labels), is refused, unchanged. It then creates it, or merge-patches its
    predictor into the plan's (the predictor is aq-airflow's: fields it no longer sets are
    removed) with the ``resourceVersion`` it read as the precondition: a change in between is
    another promotion's, and the API's 409 fails the task, nothing changed. A call whose outcome is
    unknown (a timeout, a lost connection) is checked by reading the object again. It then watches
    the new generation to Ready (``runners.inference_service.rollout``) and smoke-tests the new
    version by its versioned path (see :meth:`_smoke_test`). On any failure it puts the previous
    predictor back (or deletes the InferenceService it created) and waits for it to be Ready
    again: the task fails as ``rolled_back``, or as ``failed`` when even that did not work, saying
    so.

    Putting back happens only while the object still carries this try's version (the
    ``aq-airflow/model-version`` annotation) and only over the object as just read (its
    ``resourceVersion`` again the precondition): another promotion's change is never overwritten;
    the task then fails as ``failed``, saying the endpoint was left to that promotion.

    :meth:`on_kill` (the task killed, or timed out, mid-rollout) puts the previous predictor back
    the same way, or deletes the InferenceService this try created, without waiting for it: a
    killed promotion leaves no unverified model of its own serving; the endpoint is the old one
    again once KServe has rolled it back.
    """

    poll_interval = 2.0

    def __init__(self, *, plan: ServePlan, **kwargs: Any) -> None:
        assert plan.pod is not None, plan.step
        super().__init__(plan=plan, **kwargs)
        self.namespace = plan.pod.namespace
        self.kubernetes_conn_id = plan.pod.kubernetes_conn_id
        self._undo: _Undo | None = None  # what on_kill puts back, while a rollout is under way
        self._split: str | None = None  # how a canary promotion splits the traffic (its row's reason)

    def target(self) -> str:
        return f"{self.namespace}/{self.plan.endpoint}"

    @cached_property
    def hook(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    @property
    def rollout_seconds(self) -> float:
        timeout = self.execution_timeout
        return timeout.total_seconds() / 2 if timeout else DEFAULT_ROLLOUT_SECONDS

    def deploy(
        self, context: Any, version: ModelVersion, storage_uri: str, previous: Promotion | None,
        rows: Any, signature: Signature,
    ) -> SmokeResult:  # fmt: skip
        plan = self.plan
        name = plan.endpoint
        dag_id = context["dag"].dag_id
        live = self._read(name)
        if live is not None:
            self._refuse_if_not_ours(live, dag_id)
        before = isvc.storage_uri(live)
        if previous is not None and before is not None and before != previous.storage_uri:
            self.log.warning("InferenceService %s serves %s, not %s as current.json says: that is what a failure "
                             "puts back", self.target(), before, previous.storage_uri)  # fmt: skip
        body = isvc.inference_service(plan, version, storage_uri, dag_id)
        # KServe splits only once a model was rolled out before: the first one gets all the traffic
        self._split = canary_split(plan) if live is not None else None
        undo = _Undo(live, version.version, body)
        self._undo = undo  # from here a kill puts it back (a create or patch may land as it is killed)
        try:
            if live is None:
                self._create(body)
                self.log.info("created InferenceService %s serving %s", self.target(), storage_uri)
            else:  # only over the object read: a change in between is another promotion's (409 Conflict)
                self._patch(name, _precondition(_patch(live, body), live))
                self.log.info("patched InferenceService %s: %s -> %s", self.target(), before, storage_uri)
        except Exception as error:
            failure = self._not_applied(name, undo, error)
            self._undo = None
            raise failure from None
        # the task's timeout (AirflowTaskTimeout, a BaseException) passes through: on_kill puts back
        try:
            result = self._verify(name, version, rows, signature)
        except Exception as error:  # a failed rollout or smoke test, the API went away, the server did not answer
            failure = self._put_back(name, undo, error.reason if isinstance(error, DeploymentFailed) else _said(error))
            self._undo = None
            raise failure from None
        self._undo = None
        return result

    def _refuse_if_not_ours(self, live: dict[str, Any], dag_id: str) -> None:
        """An InferenceService aq-airflow does not manage, or that another pipeline or step
        promotes to, is left as it is: the task fails naming its owner and the ways out."""
        labels = (live.get("metadata") or {}).get("labels") or {}
        if not all(labels.get(k) == v for k, v in MANAGED_BY.items()):
            raise DeploymentFailed(
                f"InferenceService {self.target()} exists and is not managed by aq-airflow (no label "
                f"app.kubernetes.io/managed-by=aq-airflow): choose another `endpoint`, or label it to hand it over"
            )
        owner = (labels.get(DAG_LABEL), labels.get(STEP_LABEL))
        if owner != (label_value(dag_id), label_value(self.plan.step)):
            raise DeploymentFailed(
                f"endpoint `{self.plan.endpoint}` belongs to {owner[0]}.{owner[1]} (InferenceService {self.target()}, "
                f"labels {DAG_LABEL}, {STEP_LABEL}): choose another `endpoint`, or remove its `serve:` there and "
                f"delete the InferenceService (`kubectl delete inferenceservice -n {self.namespace} "
                f"{self.plan.endpoint}`)"
            )

    def _not_applied(self, name: str, undo: _Undo, error: BaseException) -> DeploymentFailed:
        """The failure of a create or patch call: refused by the API (nothing changed), refused as
        another promotion's change came first (409), or of unknown outcome (a timeout, a lost
        connection, the task interrupted): then the object is read again, and put back if the
        change landed."""
        status = getattr(error, "status", None)
        if status == 409:
            return DeploymentFailed(
                f"InferenceService {self.target()} changed while this task was about to change it ({_said(error)}): "
                "another promotion of the endpoint is under way; nothing was changed, run this task again once it "
                "is done"
            )
        if isinstance(status, int) and 400 <= status < 500:
            return DeploymentFailed(f"the Kubernetes API refused InferenceService {self.target()}: {_said(error)}")
        said = _said(error)
        unknown = f"the call to change InferenceService {self.target()} failed with its outcome unknown ({said})"
        try:
            landed = _version_of(self._read(name)) == undo.version and _version_of(undo.live) != undo.version
        except Exception as again:
            return DeploymentFailed(f"{unknown}; reading it again failed too ({_said(again)}): look at `kubectl "
                                    f"describe inferenceservice -n {self.namespace} {name}`")  # fmt: skip
        if not landed:
            return DeploymentFailed(f"{unknown}; it did not land: nothing changed")
        return self._put_back(name, undo, f"{unknown}; it landed")

    def record(self, row: dict, outcome: DeploymentOutcome, reason: str | None) -> None:
        """The attempt's row; a canary promotion's reason says how the traffic is split, as it
        stays so (see :func:`canary_split`)."""
        if self._split is not None and outcome in (DeploymentOutcome.PROMOTED, DeploymentOutcome.UNCHANGED):
            self.log.info("%s", self._split)
            reason = reason or self._split
        super().record(row, outcome, reason)

    def on_kill(self) -> None:
        """Put the endpoint back as it was before this try, without waiting (see the class)."""
        undo, self._undo = self._undo, None
        if undo is None:
            return
        try:
            self.log.info("killed mid-rollout: %s", self._restore(self.plan.endpoint, undo))
        except _Superseded as superseded:
            self.log.warning("killed mid-rollout: %s", superseded)
        except Exception as error:
            self.log.error("killed mid-rollout: InferenceService %s could not be put back: %s", self.target(), error)

    # -- the rollout -------------------------------------------------------------------------------
    def _verify(self, name: str, version: ModelVersion, rows: Any, signature: Signature) -> SmokeResult:
        deadline = time.monotonic() + self.rollout_seconds
        url = self._wait_ready(name, deadline)
        self._wait_for_version(url, version, deadline)
        oip.wait_ready(url, self.plan.endpoint, max(1.0, deadline - time.monotonic()))
        return self._smoke_test(url, version, rows, signature, deadline)

    def _smoke_test(
        self, url: str, version: ModelVersion, rows: Any, signature: Signature, deadline: float
    ) -> SmokeResult:  # fmt: skip
        """The smoke test, sent to the new version itself (``/v2/models/<endpoint>/versions/<version>/
        infer``): a previous model still answering (a Standard-mode rolling update's old pods, a
        Knative canary's other revision) answers 404 for a version it does not know, so it can
        never pass on the old model; a 404 is sent again until the new model answers or the
        rollout's time is up."""
        versioned = f"{self.plan.endpoint}/versions/{version.version}"  # oip posts to /v2/models/<this>/infer
        while True:
            try:
                return oip.smoke_test(url, versioned, rows, signature)
            except oip.SmokeFailed as failure:
                if " answered 404" not in str(failure) or time.monotonic() > deadline:
                    raise DeploymentFailed(f"the smoke test failed: {failure}") from None
            time.sleep(self.poll_interval)

    def _wait_ready(self, name: str, deadline: float) -> str:
        """Watch the InferenceService until its latest generation is Ready; its URL."""
        last = None
        while True:
            resource = self._read(name)
            if resource is None:
                raise DeploymentFailed(f"InferenceService {self.target()} was deleted while it rolled out")
            rollout = isvc.rollout(resource)
            if rollout.state != last:
                self.log.info("InferenceService %s: %s", self.target(), rollout.state or "submitted")
                last = rollout.state
            if rollout.failed:
                raise DeploymentFailed(f"KServe could not serve it: {rollout.reason}")
            if rollout.ready:
                if not rollout.url:
                    raise DeploymentFailed(f"InferenceService {self.target()} is Ready but reports no URL")
                return rollout.url
            if time.monotonic() > deadline:
                said = f" ({rollout.reason})" if rollout.reason else ""
                raise DeploymentFailed(
                    f"InferenceService {self.target()} was not Ready within {self.rollout_seconds:.0f}s: "
                    f"{rollout.state}{said}"
                )
            time.sleep(self.poll_interval)

    def _wait_for_version(self, url: str, version: ModelVersion, deadline: float) -> None:
        """Wait until the endpoint says ``version`` is ready (``GET /v2/models/<endpoint>/versions/
        <version>/ready``: MLServer answers 200 for the version its model-settings.json names)."""
        address = f"{url.rstrip('/')}/v2/models/{self.plan.endpoint}/versions/{version.version}/ready"
        while True:
            try:
                status, said = oip.call(address, timeout=10)
                if status == 200:
                    return
                said = f"{status} {said}"
            except oip.OipError as error:  # not answering yet
                said = str(error)
            if time.monotonic() > deadline:
                raise DeploymentFailed(
                    f"the endpoint did not serve version {version.version} within {self.rollout_seconds:.0f}s "
                    f"({address}: {str(said)[:300]})"
                )
            time.sleep(self.poll_interval)

    def _put_back(self, name: str, undo: _Undo, reason: str) -> DeploymentFailed:
        """Undo this try's change and wait for the endpoint to be Ready again (or gone); the failure
        to raise: ``rolled_back``, or ``failed`` when another promotion changed the endpoint since
        (it is left to that one) or putting back failed too."""
        try:
            done = self._restore(name, undo)
            self.log.info("%s", done)
            if undo.live is not None:
                self._wait_ready(name, time.monotonic() + self.rollout_seconds)
        except _Superseded as superseded:
            return DeploymentFailed(f"{reason}; {superseded}", DeploymentOutcome.FAILED)
        except Exception as error:
            return DeploymentFailed(
                f"{reason}; putting InferenceService {self.target()} back on {isvc.storage_uri(undo.live)} failed "
                f"too ({_said(error)}): it may serve no model; look at `kubectl describe inferenceservice -n "
                f"{self.namespace} {name}`",
                DeploymentOutcome.FAILED,
            )
        return DeploymentFailed(f"{reason}; {done}", DeploymentOutcome.ROLLED_BACK)

    def _restore(self, name: str, undo: _Undo) -> str:
        """Put the InferenceService back as ``undo.live`` (delete it when this try created it), only
        while it still carries this try's version, and only over the object just read (its
        ``resourceVersion`` the precondition): what was done, or :class:`_Superseded` when another
        promotion changed it since, which is never overwritten."""
        current = self._read(name)
        if current is not None and _version_of(current) == _version_of(undo.live) != undo.version:
            return f"InferenceService {self.target()} still carries version {_version_of(current)}: nothing to put back"
        if current is None or _version_of(current) != undo.version:
            now = "was deleted" if current is None else f"carries version {_version_of(current)}"
            raise _Superseded(
                f"InferenceService {self.target()} {now}, not this task's {undo.version}: another promotion (or "
                "someone) changed it since, so it was not put back"
            )
        try:
            if undo.live is None:
                self._delete(name, current)
                return f"the InferenceService this task created was deleted ({self.target()})"
            self._patch(name, _precondition(_restoring(current, undo.live, undo.body), current))
        except Exception as error:
            if getattr(error, "status", None) in (404, 409):
                raise _Superseded(
                    f"InferenceService {self.target()} changed while it was being put back ({_said(error)}): another "
                    "promotion is under way, so it was not put back"
                ) from None
            raise
        return f"the endpoint serves {isvc.storage_uri(undo.live)} again"

    # -- the API -------------------------------------------------------------------------------------
    def _read(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        k = isvc.INFERENCE_SERVICE
        try:
            return self.hook.get_custom_object(k.group, k.version, k.plural, name, namespace=self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _create(self, body: dict[str, Any]) -> None:
        k = isvc.INFERENCE_SERVICE
        self.hook.create_custom_object(k.group, k.version, k.plural, body, namespace=self.namespace)

    def _patch(self, name: str, patch: dict[str, Any]) -> None:
        """A JSON merge patch (the client's default for a dict body)."""
        k = isvc.INFERENCE_SERVICE
        self.hook.custom_object_client.patch_namespaced_custom_object(
            k.group, k.version, self.namespace, k.plural, name, patch
        )

    def _delete(self, name: str, current: dict[str, Any]) -> None:
        """Delete the InferenceService as ``current`` is (its ``resourceVersion`` the precondition)."""
        k = isvc.INFERENCE_SERVICE
        preconditions = {"preconditions": {"resourceVersion": current["metadata"]["resourceVersion"]}}
        self.hook.delete_custom_object(k.group, k.version, k.plural, name, namespace=self.namespace, body=preconditions)


def canary_split(plan: ServePlan) -> str | None:
    """What a promotion with ``canary: N`` leaves serving (KServe's Knative mode): the new
    revision gets N% of the traffic and the last revision rolled out to 100% the rest, and so it
    stays: a next promotion again gives only its N% to its model, until someone raises
    ``canaryTrafficPercent`` to 100 (or removes it). None without a canary."""
    if plan.mode != ServingMode.KNATIVE or plan.canary is None or plan.pod is None:
        return None
    raise_it = (
        f"kubectl patch inferenceservice -n {plan.pod.namespace} {plan.endpoint} --type merge "
        """-p '{"spec":{"predictor":{"canaryTrafficPercent":100}}}'"""
    )
    return (
        f"canary: the new model gets {plan.canary}% of the endpoint's traffic, the last model rolled out to all of "
        f"it the other {100 - plan.canary}%, until canaryTrafficPercent is raised to 100 (`{raise_it}`)"
    )


@dataclass(frozen=True)
class _Undo:
    """What putting this try's change back needs: the object as it was (None: this try created
    it), this try's version (the ``aq-airflow/model-version`` it set) and the body it applied."""

    live: dict[str, Any] | None
    version: str
    body: dict[str, Any]


class _Superseded(Exception):
    """The endpoint no longer carries this try's change: another promotion's, left as it is."""


def _version_of(resource: dict[str, Any] | None) -> str | None:
    return (((resource or {}).get("metadata") or {}).get("annotations") or {}).get(isvc.VERSION_ANNOTATION)


def _precondition(patch: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    """``patch`` with ``resource``'s ``resourceVersion``: the API server refuses it (409 Conflict)
    unless the object is still as ``resource`` was read."""
    metadata = {**patch.get("metadata", {}), "resourceVersion": resource["metadata"]["resourceVersion"]}
    return {**patch, "metadata": metadata}


def _difference(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``: keys ``new`` lacks are null."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {key: None for key in old if key not in new}
    for key, value in new.items():
        if old.get(key) != value:
            patch[key] = _difference(old.get(key), value)
    return patch


def _patch(live: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that gives ``live`` ``body``'s predictor (the whole of it: it is ours) and
    its labels and annotations (added to the object's own)."""
    meta = body.get("metadata") or {}
    predictor = _difference(((live.get("spec") or {}).get("predictor")) or {}, body["spec"]["predictor"])
    return {
        "metadata": {"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}},
        "spec": {"predictor": predictor},
    }


def _restoring(current: dict[str, Any], live: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that puts ``current`` back as ``live``: its predictor, and exactly its values
    of the labels and annotations this try set (one it lacked, such as a model version, removed)."""
    patch = _patch(current, live)
    for part in ("labels", "annotations"):
        had = (live.get("metadata") or {}).get(part) or {}
        patch["metadata"][part] = {key: had.get(key) for key in (body["metadata"].get(part) or {})}
    return patch


def _said(error: BaseException) -> str:
    """An error in a line (the Kubernetes client's ApiException: its status and the API's message)."""
    body = getattr(error, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        return f"{getattr(error, 'status', '')} {message or body}".strip()
    return str(error) or type(error).__name__
