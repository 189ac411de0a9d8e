"""A step that runs as a custom resource an operator of the cluster acts on (KubeRay's RayJob, and
a third engine's later): the base operator that creates it, watches its status, streams the log
of the pod doing the work into the task's log, and deletes it when the task ends, whichever way.

An engine subclass says only what is its own: the resource's kind, its body (built when the task
runs, after Airflow rendered the templates: the run id, the try), how its status reads
(``outcome``), which pods' log to follow, and what a success or a failure returns.
Everything here goes through the cncf provider's ``KubernetesHook`` and the connection the plan
names; nothing is asked of the cluster when a DAG file is parsed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from aq_airflow.runners.custom_resource import Outcome, ResourceKind, earlier_tries, identity, resource_name

LOG_TAIL = 200  # the follower keeps this many last lines for the failure's reason
# the followed pods' lines: a module logger, as KubernetesPodOperator's pod manager logs a pod's, which
# the task runner sends to the task's log (and ``dag.test`` to the console)
POD_LOG = logging.getLogger(__name__)


class ResourceGone(AirflowException):
    """The resource was deleted before it finished (by hand, or by on_kill)."""


class AqCustomResourceOperator(BaseOperator):
    """Create one custom resource per task try, follow it to its end, and delete it.

    The resource is named per task instance and try (``runners.custom_resource.resource_name``)
    and labelled with the task's identity: a resource of the same try found at start (the worker
    restarted) is reattached to, not created twice; those of earlier tries of the same task
    instance are deleted first (a retry never runs beside the try it replaces). The resource is
    deleted when the task finishes, fails, times out or is killed; its pods go with it (their
    owner references).
    """

    kind: ResourceKind  # the engine's resource
    poll_interval = 2.0  # seconds between status reads

    def __init__(self, *, step: str, namespace: str, kubernetes_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.resource: str | None = None  # the name of this try's resource, once known
        self._follower: LogFollower | None = None

    # -- what an engine says ---------------------------------------------------------------------
    def build(self, context: Any, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """The resource's body, named ``name``, with ``labels`` (the task's identity) among its own."""
        raise NotImplementedError

    def outcome(self, status: dict[str, Any] | None) -> Outcome:
        """What the resource's ``status`` says."""
        raise NotImplementedError

    def log_selector(self, name: str) -> str:
        """The label selector of the pods whose log is the work's (one after another)."""
        raise NotImplementedError

    log_container: str | None = None  # the container of those pods whose log is followed

    def succeeded(self, context: Any, outcome: Outcome) -> Any:
        """The task's return value once the resource succeeded."""
        return None

    def failed(self, outcome: Outcome, lines: list[str]) -> AirflowException:
        """The task's error for a resource that finished without success; ``lines`` are the last of
        the followed log."""
        return AirflowException(f"{self.kind.kind} {self.resource} finished {outcome.state}: {outcome.message}")

    # -- the lifecycle ---------------------------------------------------------------------------
    def hook(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        labels = identity(ti.dag_id, ti.task_id, context["run_id"], ti.map_index, ti.try_number)
        name = resource_name(ti.dag_id, self.step, context["run_id"], ti.map_index, ti.try_number)
        hook = self.hook()
        self._remove_earlier_tries(hook, labels)
        self.resource = name
        if self._read(hook, name) is not None:
            self.log.info("%s %s/%s of this try exists: following it", self.kind.kind, self.namespace, name)
        else:
            body = self.build(context, name, labels)
            k = self.kind
            hook.create_custom_object(k.group, k.version, k.plural, body, namespace=self.namespace)
            self.log.info("created %s %s/%s", k.kind, self.namespace, name)
        self._follower = LogFollower(hook, self.namespace, self.log_selector(name), self.log_container)
        self._follower.start()
        try:
            outcome = self._watch(hook, name)
            self._follower.finish()
        finally:
            self._follower.finish(grace=0)
            self._delete(hook, name)
        self.log.info("%s %s finished: %s", self.kind.kind, name, outcome.state)
        if not outcome.succeeded:
            raise self.failed(outcome, list(self._follower.tail))
        return self.succeeded(context, outcome)

    def on_kill(self) -> None:
        """Delete this try's resource (Kubernetes deletes its pods, which stops the work)."""
        if self.resource is not None:
            self._delete(self.hook(), self.resource)
        if self._follower is not None:
            self._follower.finish(grace=0)

    def _watch(self, hook: Any, name: str) -> Outcome:
        """Read the resource's status until it says it finished; the task's timeout interrupts it."""
        last = None
        while True:
            resource = self._read(hook, name)
            if resource is None:
                raise ResourceGone(f"{self.kind.kind} {self.namespace}/{name} was deleted before it finished")
            outcome = self.outcome(resource.get("status"))
            if outcome.state != last:
                self.log.info("%s %s: %s", self.kind.kind, name, outcome.state or "submitted")
                last = outcome.state
            if outcome.finished:
                return outcome
            time.sleep(self.poll_interval)

    def _read(self, hook: Any, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        k = self.kind
        try:
            return hook.get_custom_object(k.group, k.version, k.plural, name, namespace=self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _delete(self, hook: Any, name: str) -> None:
        """Delete the resource and what it owns now (foreground: its pods before it); gone is fine."""
        from kubernetes.client.exceptions import ApiException

        k = self.kind
        try:
            hook.delete_custom_object(
                k.group, k.version, k.plural, name, namespace=self.namespace, propagation_policy="Foreground"
            )
            self.log.info("deleted %s %s/%s", k.kind, self.namespace, name)
        except ApiException as error:
            if error.status != 404:
                raise

    def _remove_earlier_tries(self, hook: Any, labels: dict[str, str]) -> None:
        """Delete what earlier tries of this task instance left (a worker that died mid-task)."""
        k = self.kind
        found = hook.custom_object_client.list_namespaced_custom_object(
            k.group, k.version, self.namespace, k.plural, label_selector=earlier_tries(labels)
        )
        for item in found.get("items") or []:
            name = item["metadata"]["name"]
            self.log.info("deleting %s %s/%s of an earlier try", k.kind, self.namespace, name)
            self._delete(hook, name)


class LogFollower(threading.Thread):
    """Streams the log of the pods matching a selector into the task's log, each pod once, in the
    order they were made (a Job's retries make more than one), keeping the last lines."""

    def __init__(self, hook: Any, namespace: str, selector: str, container: str | None) -> None:
        super().__init__(name=f"aq-log-{selector}", daemon=True)
        self.hook, self.namespace, self.selector, self.container = hook, namespace, selector, container
        self.tail: deque[str] = deque(maxlen=LOG_TAIL)
        self._finishing = threading.Event()
        self._stream: Any = None

    def finish(self, grace: float = 10.0) -> None:
        """Stop once every pod's log so far is read (at most ``grace`` seconds more), then at once."""
        self._finishing.set()
        if self.is_alive() and grace:
            self.join(grace)
        stream = self._stream
        if self.is_alive() and stream is not None:
            stream.close()
            self.join(2)

    def run(self) -> None:
        try:
            self._follow_all()
        except Exception as error:  # the log is best effort: the resource's status decides the task
            POD_LOG.warning("stopped following the log of %s: %s", self.selector, error)

    def _follow_all(self) -> None:
        core = self.hook.core_v1_client
        seen: set[str] = set()
        while True:
            pods = core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
            fresh = [p for p in pods if p.metadata.uid not in seen]
            fresh.sort(key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
            if not fresh:
                if self._finishing.is_set():
                    return
                self._finishing.wait(2.0)  # as often as the status is read
                continue
            pod = fresh[0]
            seen.add(pod.metadata.uid)
            POD_LOG.info("following the log of pod %s/%s", self.namespace, pod.metadata.name)
            self._follow(core, pod.metadata.name)

    def _follow(self, core: Any, pod: str) -> None:
        from kubernetes.client.exceptions import ApiException

        while True:  # a pod whose container has not started refuses its log (400): wait for it
            try:
                self._stream = core.read_namespaced_pod_log(
                    pod, self.namespace, container=self.container, follow=True, _preload_content=False
                )
                break
            except ApiException as error:
                if error.status != 400 or self._finishing.wait(1.0):
                    return
        pending = b""
        try:
            for chunk in self._stream.stream(decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._line(raw)
        finally:
            if pending:
                self._line(pending)
            self._stream.release_conn()
            self._stream = None

    def _line(self, raw: bytes) -> None:
        text = raw.decode(errors="replace").rstrip("\r")
        self.tail.append(text)
        POD_LOG.info("[%s] %s", self.container, text)
