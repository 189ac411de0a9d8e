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
from functools import cached_property
from typing import Any

from aq_airflow.artifacts.model_repository import ModelVersion, Promotion
from aq_airflow.operators.serve import DeploymentFailed, ServeTask
from aq_airflow.plan.model import ServePlan
from aq_airflow.results.rows import DeploymentOutcome
from aq_airflow.runners import inference_service as isvc
from aq_airflow.runners.custom_resource import MANAGED_BY
from aq_airflow.serving import oip
from aq_airflow.serving.oip import SmokeResult
from aq_airflow.serving.signature import Signature

# how long a rollout may take when the task has no timeout (the spec's `timeout:` is the task's
# execution_timeout; then half of it is the rollout's, the other half kept to put the endpoint back)
DEFAULT_ROLLOUT_SECONDS = 600
# the runtimes whose Open Inference Protocol server knows our version (model-settings.json's);
# Triton's versions are its own numbered folders
_VERSIONED_RUNTIMES = ("kserve-mlserver",)


class AqInferenceServiceOperator(ServeTask):
    """The endpoint is a KServe InferenceService named as the endpoint in the profile's namespace.

    :meth:`deploy` reads the live InferenceService first: its ``storageUri`` is what a failure puts
    back (the live object's, not ``current.json``'s: the cluster is what serves), and one that
    aq-airflow does not manage is refused, unchanged. It then creates it, or merge-patches its
    predictor into the plan's (the predictor is aq-airflow's: fields it no longer sets are
    removed), watches the new generation to Ready (``runners.inference_service.rollout``), waits
    until the endpoint says the new version is ready (MLServer; a Standard-mode rolling
    update keeps the old pods answering, and Ready, until the new ones are up), and smoke-tests
    it over the Open Inference Protocol at ``status.address.url`` (else ``status.url``). On any
    failure it puts the previous predictor back (or deletes the InferenceService it created) and
    waits for it to be Ready again: the task fails as ``rolled_back``, or as ``failed`` when even
    that did not work, saying so.

    :meth:`on_kill` (the task killed, or timed out, mid-rollout) puts the previous predictor back,
    or deletes the InferenceService this try created, without waiting for it: a killed promotion
    never leaves an unverified model serving; the endpoint is the old one again once KServe has
    rolled it back.
    """

    poll_interval = 2.0

    def __init__(self, *, plan: ServePlan, **kwargs: Any) -> None:
        assert plan.pod is not None, plan.step
        super().__init__(plan=plan, **kwargs)
        self.namespace = plan.pod.namespace
        self.kubernetes_conn_id = plan.pod.kubernetes_conn_id
        self._undo: dict[str, Any] | None = None  # what on_kill puts back, while a rollout is under way

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
        live = self._read(name)
        if live is not None and not _ours(live):
            raise DeploymentFailed(
                f"InferenceService {self.target()} exists and is not managed by aq-airflow (no label "
                f"app.kubernetes.io/managed-by=aq-airflow): choose another `endpoint`, or label it to hand it over"
            )
        owner = (((live or {}).get("metadata") or {}).get("labels") or {}).get(isvc.DAG_LABEL)
        mine = isvc.service_labels(plan, context["dag"].dag_id)[isvc.DAG_LABEL]
        if owner is not None and owner != mine:
            raise DeploymentFailed(
                f"InferenceService {self.target()} is pipeline `{owner}`'s (label {isvc.DAG_LABEL}={owner}): a "
                f"pipeline never replaces another's model; give step `{plan.step}` another `endpoint`, or relabel "
                f"it {isvc.DAG_LABEL}={mine} to hand it over"
            )
        before = isvc.storage_uri(live)
        if previous is not None and before is not None and before != previous.storage_uri:
            self.log.warning("InferenceService %s serves %s, not %s as current.json says: that is what a failure "
                             "puts back", self.target(), before, previous.storage_uri)  # fmt: skip
        body = isvc.inference_service(plan, version, storage_uri, context["dag"].dag_id)
        self._undo = {"live": live}  # from here a kill puts it back (a create or patch may land as it is killed)
        try:
            if live is None:
                self._create(body)
                self.log.info("created InferenceService %s serving %s", self.target(), storage_uri)
            else:
                self._patch(name, _patch(live, body))
                self.log.info("patched InferenceService %s: %s -> %s", self.target(), before, storage_uri)
        except Exception as error:  # the API refused it: nothing changed
            self._undo = None
            refused = f"the Kubernetes API refused InferenceService {self.target()}: {_said(error)}"
            raise DeploymentFailed(refused) from None
        try:
            return self._verify(name, version, rows, signature)
        except DeploymentFailed as failure:
            raise self._put_back(name, live, failure.reason) from None
        except Exception as error:  # the API went away, the model server did not answer
            raise self._put_back(name, live, _said(error)) from None
        finally:
            self._undo = None

    def on_kill(self) -> None:
        """Put the endpoint back as it was before this try, without waiting (see the class)."""
        undo, self._undo = self._undo, None
        if undo is None:
            return
        live = undo["live"]
        try:
            if live is None:
                self._delete(self.plan.endpoint)
            else:
                self._patch(self.plan.endpoint, _patch(self._read(self.plan.endpoint) or live, live))
            self.log.info("killed mid-rollout: InferenceService %s put back", self.target())
        except Exception as error:
            self.log.error("killed mid-rollout: InferenceService %s could not be put back: %s", self.target(), error)

    # -- the rollout -------------------------------------------------------------------------------
    def _verify(self, name: str, version: ModelVersion, rows: Any, signature: Signature) -> SmokeResult:
        deadline = time.monotonic() + self.rollout_seconds
        url = self._wait_ready(name, deadline)
        if isvc.RUNTIMES[self.plan.format] in _VERSIONED_RUNTIMES:
            self._wait_for_version(url, version, deadline)
        oip.wait_ready(url, self.plan.endpoint, max(1.0, deadline - time.monotonic()))
        try:
            return oip.smoke_test(url, self.plan.endpoint, rows, signature)
        except oip.SmokeFailed as failure:
            raise DeploymentFailed(f"the smoke test failed: {failure}") from None

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

    def _put_back(self, name: str, live: dict[str, Any] | None, reason: str) -> DeploymentFailed:
        """Undo this try's change and wait for the endpoint to be Ready again (or gone); the failure
        to raise: ``rolled_back``, or ``failed`` when putting back failed too."""
        before = isvc.storage_uri(live)
        try:
            if live is None:
                self._delete(name)
                self.log.info("deleted InferenceService %s (this task created it)", self.target())
                return DeploymentFailed(f"{reason}; the InferenceService this task created was deleted",
                                        DeploymentOutcome.ROLLED_BACK)  # fmt: skip
            current = self._read(name)
            if current is None:
                self._create(_recreated(live))
            else:
                self._patch(name, _patch(current, live))
            self.log.info("put InferenceService %s back on %s; waiting for it to be Ready", self.target(), before)
            self._wait_ready(name, time.monotonic() + self.rollout_seconds)
        except Exception as error:
            return DeploymentFailed(
                f"{reason}; putting InferenceService {self.target()} back on {before} failed too "
                f"({_said(error)}): it may serve no model; look at `kubectl describe inferenceservice -n "
                f"{self.namespace} {name}`",
                DeploymentOutcome.FAILED,
            )
        return DeploymentFailed(f"{reason}; the endpoint serves {before} again", DeploymentOutcome.ROLLED_BACK)

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

    def _delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        k = isvc.INFERENCE_SERVICE
        try:
            self.hook.delete_custom_object(k.group, k.version, k.plural, name, namespace=self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise


def _ours(resource: dict[str, Any]) -> bool:
    labels = (resource.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items())


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


def _recreated(live: dict[str, Any]) -> dict[str, Any]:
    """An InferenceService as it was, to create again (what the API server set left out)."""
    meta = live.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    return {"apiVersion": live["apiVersion"], "kind": live["kind"], "metadata": kept, "spec": live["spec"]}


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
