"""A step that runs as a custom resource an operator of the cluster acts on (the Spark operator's
SparkApplication, KubeRay's RayJob, a third engine's later): the one lifecycle every such step
shares. It creates the resource (after deleting what an earlier try of the task left), or
reattaches to this try's; watches its status through the engine's ``outcome``; fails a resource
whose working pod has not started within the start-up limit, naming that pod's phase and last
event; streams the working pod's log into the task's log; fails with the engine's reason and the
log's last lines; deletes the resource when the task ends, whichever way (success, failure,
timeout, kill); and returns the manifest the step committed, with the image digest its working
pod ran.

An engine supplies only what is its own (a class attribute or a method each): the resource's
``kind``, its body (``build``, from the typed Plan, called when the task runs, after Airflow
rendered the templates), how its status reads (``outcome``, the resource's ``status``), which
pods do the work (``log_selector``, ``log_container``), and, where its status says more than a
word, the reason of a failure (``reason``, ``exit_code``). Everything here goes through the cncf
provider's ``KubernetesHook`` and the connection the plan names; nothing is asked of the cluster
when a DAG file is parsed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from functools import cached_property
from typing import Any

from airflow.exceptions import AirflowException

from aq_airflow.artifacts.store import Location
from aq_airflow.operators.errors import StepFailed
from aq_airflow.operators.image import container_image_id, with_image_digest
from aq_airflow.runners import code, environment
from aq_airflow.runners.custom_resource import Outcome, ResourceKind, earlier_tries, identity, resource_name
from aq_airflow.runtime import contract

LOG_TAIL = 200  # the follower keeps this many last lines for the failure's reason
FAILURE_LINES = 20  # of which the task's error shows these
# how long the working pod may take to start (its image pulled, a node found: a GPU node scaled
# up), and how long the status may take to say how it ended once the working pod has exited
# (an engine's operator reconciles within seconds; a stuck status must not hold the task forever)
STARTUP_TIMEOUT_SECONDS = 600
OUTCOME_TIMEOUT_SECONDS = 300
_STARTED = ("Running", "Succeeded", "Failed")
_ENDED = ("Succeeded", "Failed")
# the followed pods' lines: a module logger, as KubernetesPodOperator's pod manager logs a pod's, which
# the task runner sends to the task's log (and ``dag.test`` to the console)
POD_LOG = logging.getLogger(__name__)


class ResourceGone(AirflowException):
    """The resource was deleted before it finished (by hand, or by on_kill)."""


class CustomResourceStep:
    """The lifecycle of a step run as one custom resource per task try (a mixin: the engine's
    operator also derives from an Airflow operator, BaseOperator or the provider's own).

    The resource is named per task instance and try (``runners.custom_resource.resource_name``)
    and labelled with the task's identity (``runners.custom_resource.identity``, as
    KubernetesPodOperator labels its pods): a resource of the same try found at start (the worker
    restarted) is reattached to, not created twice; those of earlier tries of the same task
    instance are deleted first (a retry never runs beside the try it replaces, on the same output
    folder). The resource is deleted (foreground: its pods first) when the task finishes, fails,
    times out or is killed.

    The operator sets ``plan`` (the step's RunPlan), ``namespace`` and ``kubernetes_conn_id``.
    """

    kind: ResourceKind  # the engine's resource
    log_container: str | None = None  # the container of the working pods whose log is followed
    poll_interval: float = 2.0  # seconds between status reads
    startup_timeout = STARTUP_TIMEOUT_SECONDS
    outcome_timeout = OUTCOME_TIMEOUT_SECONDS
    plan: Any
    namespace: str
    kubernetes_conn_id: str
    resource: str | None = None  # the name of this try's resource, once known
    _follower: LogFollower | None = None

    # -- what an engine says ---------------------------------------------------------------------
    def build(self, context: Any, name: str, labels: dict[str, str]) -> dict[str, Any]:
        """The resource's body, named ``name``, with ``labels`` (the task's identity) among its own
        and its pods'."""
        raise NotImplementedError

    def outcome(self, status: dict[str, Any] | None) -> Outcome:
        """What the resource's ``status`` says."""
        raise NotImplementedError

    def log_selector(self, name: str) -> str:
        """The label selector of the pods doing the work (one after another): their log is the
        task's, their start is the resource's, their image is the step's."""
        raise NotImplementedError

    def exit_code(self, outcome: Outcome) -> int | None:
        """The working container's exit code, where the engine's failure message says it."""
        return None

    def reason(self, outcome: Outcome, lines: list[str]) -> str:
        """Why a resource failed, after "ended <state>": the engine's message."""
        return f": {outcome.message}" if outcome.message else ""

    # -- the lifecycle ---------------------------------------------------------------------------
    @cached_property
    def hook(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        run = self.plan
        labels = identity(ti.dag_id, ti.task_id, context["run_id"], ti.map_index, ti.try_number)
        name = resource_name(ti.dag_id, run.step, context["run_id"], ti.map_index, ti.try_number)
        hook, k = self.hook, self.kind
        self._remove_earlier_tries(hook, labels)
        self.resource = name
        if self._read(hook, name) is not None:
            self.log.info("%s %s/%s of this try exists: following it", k.kind, self.namespace, name)
        else:
            body = self.build(context, name, labels)
            hook.create_custom_object(k.group, k.version, k.plural, body, namespace=self.namespace)
            self.log.info("created %s %s/%s", k.kind, self.namespace, name)
        self._follower = LogFollower(hook, self.namespace, self.log_selector(name), self.log_container)
        self._follower.start()
        try:
            outcome, pod = self._watch(hook, name)
            self._follower.finish()
        finally:
            self._follower.finish(grace=0)
            self._delete(hook, name)
        self.log.info("%s %s finished: %s", k.kind, name, outcome.state)
        if not outcome.succeeded:
            raise self.failed(outcome, list(self._follower.tail))
        # the step's commit, with the image digest its working pod's status reports
        output = Location.of(environment.output_ref(run, ti.map_index).location(run.artifacts or "", context["run_id"]))
        image_id = container_image_id(pod, self.log_container) if pod is not None else None
        self.committed = with_image_digest(output, output.read_manifest(run.step), image_id)
        return self.committed

    def on_kill(self) -> None:
        """Delete this try's resource (Kubernetes deletes its pods, which stops the work)."""
        if self.resource is not None:
            self._delete(self.hook, self.resource)
        if self._follower is not None:
            self._follower.finish(grace=0)

    def failed(self, outcome: Outcome, lines: list[str]) -> StepFailed:
        """The task's error for a resource that finished without success, or whose status did not
        say how it ended: for the runtime's own exit codes (its code package, a missing package:
        ``runners.code``) the runtime's reason; else the state and the engine's reason; then the
        working pod's last lines (``lines``, its followed log)."""
        run = self.plan
        said = [line.strip() for line in [*lines, *outcome.message.splitlines()] if line.strip()]
        marker = next((line for line in reversed(said) if line.startswith(contract.RUNTIME_MARKER)), "")
        known = code.failure_message(run, self.exit_code(outcome), marker)
        if known:
            return StepFailed(known, lines[-FAILURE_LINES:])
        state = outcome.state or "never reported"
        message = f"step `{run.step}` failed: its {self.kind.kind} {self.resource} ended {state}"
        message += self.reason(outcome, lines)
        if not outcome.finished:
            message += f" (its state {self.outcome_timeout}s after its working pod's container exited)"
        tail = [line for line in lines if line.strip()][-FAILURE_LINES:]
        if tail:
            message += "\nits last lines:\n" + "\n".join(tail)
        return StepFailed(message, tail)

    def _watch(self, hook: Any, name: str) -> tuple[Outcome, Any]:
        """Read the resource's status until it says it finished; the task's timeout interrupts it.
        Returns the outcome and the last working pod seen (for its image). Fails a resource whose
        working pod did not start in :attr:`startup_timeout` seconds, and one whose status did not
        finish :attr:`outcome_timeout` seconds after its working pod ended."""
        last, pod, started, ended_at = None, None, False, None
        startup_deadline = time.monotonic() + self.startup_timeout
        while True:
            resource = self._read(hook, name)
            if resource is None:
                raise ResourceGone(f"{self.kind.kind} {self.namespace}/{name} was deleted before it finished")
            outcome = self.outcome(resource.get("status"))
            if outcome.state != last:
                self.log.info("%s %s: %s", self.kind.kind, name, outcome.state or "submitted")
                last = outcome.state
            pod = self._working_pod(hook, name) or pod
            if outcome.finished:
                return outcome, pod
            phase = getattr(getattr(pod, "status", None), "phase", None)
            started = started or phase in _STARTED
            if not started and time.monotonic() > startup_deadline:
                raise StepFailed(self._not_started(hook, name, outcome, pod), [])
            if phase in _ENDED:
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at > self.outcome_timeout:
                    return outcome, pod
            else:
                ended_at = None
            time.sleep(self.poll_interval)

    def _working_pod(self, hook: Any, name: str) -> Any:
        """The newest pod doing the resource's work, or None."""
        pods = hook.core_v1_client.list_namespaced_pod(self.namespace, label_selector=self.log_selector(name)).items
        return max(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name), default=None)

    def _not_started(self, hook: Any, name: str, outcome: Outcome, pod: Any) -> str:
        """Why the work did not start: the working pod's phase and its last event, or that there is
        no such pod yet (the engine's operator made none: is it running, watching this namespace?)."""
        k = self.kind
        state = outcome.state or "new"
        head = f"step `{self.plan.step}`: {k.kind} {name} did not start its work in {self.startup_timeout}s"
        if pod is None:
            return (
                f"{head} ({state}, no {self.log_container} pod yet): is the {k.kind} operator running and "
                f"watching namespace `{self.namespace}`, and can its other pods be scheduled?"
            )
        pod_name = pod.metadata.name
        phase = getattr(pod.status, "phase", None) or "Unknown"
        event = self._last_event(hook, pod_name)
        return f"{head} ({state}): its pod {pod_name} is {phase}" + (f"; last event: {event}" if event else "")

    def _last_event(self, hook: Any, pod_name: str) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            events = hook.core_v1_client.list_namespaced_event(
                self.namespace, field_selector=f"involvedObject.name={pod_name}"
            ).items
        except ApiException:
            return ""
        events = [e for e in events if getattr(e.involved_object, "name", None) == pod_name]
        if not events:
            return ""
        event = max(events, key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or ""))
        return f"{event.reason}: {event.message}" if event.message else str(event.reason)

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
