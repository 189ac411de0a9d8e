"""A Kubernetes API server on loopback with a test-side kubelet, for the real
KubernetesPodOperator.

It serves what KPO calls for a pod task (DESIGN.md section 3): list pods by labelSelector, create
a pod, read it (polling), stream its log (follow, timestamps), delete and patch it, list events;
and ``/version`` (what ``aq-airflow doctor`` asks).
The kubelet runs each created pod's container command as a local process (``python`` is this
interpreter), with the pod's env (Secret references resolved from ``secrets``), in an empty
working folder, with an import path of aq-airflow's own install only (what an image with the
runtime has: never the dags folder, so only a code package can supply a step's code), and
reports its phase, exit code and output; a failed container whose ``terminationMessagePolicy``
is ``FallbackToLogsOnError`` gets its last log lines as its terminated state's message, as a
kubelet does. Every created pod is kept in ``created`` for assertions.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import hashlib
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable

from aiohttp import web

import aq_airflow

# the folder aq-airflow is imported from here: a pod's import path holds it and nothing else
_RUNTIME_PATH = os.path.dirname(os.path.dirname(os.path.abspath(aq_airflow.__file__)))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_id(image: str) -> str:
    """The ``imageID`` this kubelet reports for ``image``: containerd's form, the repository and the
    digest it pulled (``ghcr.io/acme/steps@sha256:<hex>``; here the sha256 of the image's name, as
    no image is pulled). A real kubelet's value was not seen by these tests."""
    repository = image.split("@")[0]
    name, _, tag = repository.rpartition(":")
    if name and "/" not in tag:  # `repo:tag`, not a registry's `host:port/repo`
        repository = name
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _owned_by(pod: dict, resource: dict) -> bool:
    """Whether ``resource`` owns ``pod`` (its ``ownerReferences``), so deleting it deletes the pod."""
    uid = resource["metadata"].get("uid")
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])


def _merge(target: dict, patch: dict) -> None:
    """A JSON merge patch (RFC 7386), in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _conflict(key: tuple[str, str, str], why: str) -> web.Response:
    """The API server's 409 for a change whose precondition no longer holds."""
    message = f'Operation cannot be fulfilled on {key[0]} "{key[2]}": {why}'
    return web.json_response({"kind": "Status", "status": "Failure", "message": message, "reason": "Conflict",
                              "code": 409}, status=409)  # fmt: skip


def _matches(labels: dict, selector: str) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubernetes:
    def __init__(
        self,
        secrets: dict[tuple[str, str], str] | None = None,
        extra_env: dict[str, str] | None = None,
        controllers: dict[str, object] | None = None,
        watchers: dict[str, object] | None = None,
    ):
        self.secrets = secrets or {}
        # custom resources, by (plural, namespace, name), and the test-side controllers that act on
        # them: {plural: async callable(api, key)}, started when one is created (a SparkApplication's
        # controller makes its driver pod, a RayJob's its submitter pod, and report the state)
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.controllers = controllers or {}
        # {plural: async callable(api, event, key)}: hears every change of such an object (ADDED,
        # MODIFIED, DELETED), as a controller's watch does (KServe's reconciles on each)
        self.watchers = watchers or {}
        self.created_objects: list[dict] = []
        self.extra_env = extra_env or {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.logs: dict[tuple[str, str], list[str]] = {}
        self.done: dict[tuple[str, str], asyncio.Event] = {}
        self.created: list[dict] = []
        self.processes: dict[tuple[str, str], asyncio.subprocess.Process] = {}
        self.requests: list[str] = []
        # called with each custom-object request line (``PATCH inferenceservices churn``) once it
        # was handled, in the API's loop: a test changes an object between a client's calls with it
        self.after: Callable[[str], None] | None = None
        # custom-object request lines whose change is applied but whose answer is lost (the
        # connection dropped): a client sees a call of unknown outcome
        self.lose_answers: set[str] = set()
        self.loop = asyncio.new_event_loop()
        self.url = ""

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> FakeKubernetes:
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        pods = "/api/v1/namespaces/{ns}/pods"
        app.router.add_get(pods, self.list_pods)
        app.router.add_post(pods, self.create_pod)
        app.router.add_get("/api/v1/pods", self.list_pods)
        app.router.add_get(pods + "/{name}", self.read_pod)
        app.router.add_delete(pods + "/{name}", self.delete_pod)
        app.router.add_patch(pods + "/{name}", self.patch_pod)
        app.router.add_get(pods + "/{name}/log", self.read_log)
        app.router.add_get("/api/v1/namespaces/{ns}/events", self.list_events)
        app.router.add_get("/version/", self.version)
        objects = "/apis/{group}/{version}/namespaces/{ns}/{plural}"
        app.router.add_post(objects, self.create_object)
        app.router.add_get(objects, self.list_objects)
        app.router.add_get(objects + "/{name}", self.read_object)
        app.router.add_get(objects + "/{name}/status", self.read_object)
        app.router.add_delete(objects + "/{name}", self.delete_object)
        app.router.add_patch(objects + "/{name}", self.patch_object)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def kubeconfig(self, folder: str) -> str:
        path = os.path.join(folder, "kubeconfig")
        with open(path, "w") as handle:
            handle.write(
                "apiVersion: v1\nkind: Config\n"
                f'clusters: [{{name: loop, cluster: {{server: "{self.url}"}}}}]\n'
                "users: [{name: test, user: {token: test}}]\n"
                "contexts: [{name: loop, context: {cluster: loop, user: test, namespace: default}}]\n"
                "current-context: loop\n"
            )
        return path

    # -- API -----------------------------------------------------------------------------------
    async def version(self, request: web.Request) -> web.Response:
        self.requests.append("VERSION")
        return web.json_response({
            "major": "1", "minor": "31", "gitVersion": "v1.31.0-aq-test", "gitCommit": "0" * 40,
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22", "compiler": "gc",
            "platform": "linux/amd64",
        })  # fmt: skip

    async def list_pods(self, request: web.Request) -> web.Response:
        self.requests.append(f"LIST {request.query_string}")
        namespace = request.match_info.get("ns")
        selector = request.query.get("labelSelector", "")
        items = [
            pod
            for (ns, _), pod in self.pods.items()
            if (namespace is None or ns == namespace) and _matches(pod["metadata"].get("labels", {}), selector)
        ]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def create_pod(self, request: web.Request) -> web.Response:
        body = await request.json()
        namespace = request.match_info["ns"]
        self.requests.append(f"POST {namespace}/{body['metadata']['name']}")
        self.created.append(copy.deepcopy(body))
        key = self.start_pod(namespace, body)
        return web.json_response(self.pods[key], status=201)

    async def read_pod(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        self.requests.append(f"GET {key[1]}")
        if key not in self.pods:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        return web.json_response(self.pods[key])

    async def delete_pod(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        self.requests.append(f"DELETE {key[1]}")
        pod = self.pods.pop(key, None)
        if pod is None:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        return web.json_response(pod)

    async def patch_pod(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        self.requests.append(f"PATCH {key[1]}")
        patch = await request.json()
        pod = self.pods.get(key)
        if pod is None:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        pod["metadata"].setdefault("labels", {}).update((patch.get("metadata") or {}).get("labels") or {})
        return web.json_response(pod)

    # -- custom resources ------------------------------------------------------------------------
    @staticmethod
    def _object_key(request: web.Request) -> tuple[str, str, str]:
        match = request.match_info
        return match["plural"], match["ns"], match["name"]

    async def create_object(self, request: web.Request) -> web.Response:
        body = await request.json()
        plural, namespace = request.match_info["plural"], request.match_info["ns"]
        key = (plural, namespace, body["metadata"]["name"])
        self.requests.append(f"POST {plural} {namespace}/{key[2]}")
        if key in self.objects:
            return web.json_response({"kind": "Status", "code": 409, "reason": "AlreadyExists"}, status=409)
        self.created_objects.append(copy.deepcopy(body))
        resource = copy.deepcopy(body)
        resource["metadata"].update(
            uid=str(uuid.uuid4()), namespace=namespace, creationTimestamp=_now(), resourceVersion="1", generation=1
        )
        self.objects[key] = resource
        controller = self.controllers.get(plural)
        if controller is not None:
            self.loop.create_task(controller(self, key))
        self._notify("ADDED", key)
        return self._handled(request, web.json_response(resource, status=201))

    def _notify(self, event: str, key: tuple[str, str, str]) -> None:
        watcher = self.watchers.get(key[0])
        if watcher is not None:
            self.loop.create_task(watcher(self, event, key))

    async def list_objects(self, request: web.Request) -> web.Response:
        plural, namespace = request.match_info["plural"], request.match_info["ns"]
        selector = request.query.get("labelSelector", "")
        items = [
            o
            for (p, ns, _), o in self.objects.items()
            if p == plural and ns == namespace and _matches(o["metadata"].get("labels", {}), selector)
        ]
        return web.json_response({"kind": "List", "metadata": {}, "items": items})

    async def read_object(self, request: web.Request) -> web.Response:
        key = self._object_key(request)
        self.requests.append(f"GET {key[0]} {key[2]}")
        if key not in self.objects:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        return self._handled(request, web.json_response(self.objects[key]))

    async def delete_object(self, request: web.Request) -> web.Response:
        key = self._object_key(request)
        self.requests.append(f"DELETE {key[0]} {key[2]}")
        resource = self.objects.get(key)
        if resource is None:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        options = await request.json() if request.can_read_body else {}
        wanted = ((options or {}).get("preconditions") or {}).get("resourceVersion")
        if wanted is not None and wanted != resource["metadata"].get("resourceVersion"):
            return self._handled(request, _conflict(key, f"the ResourceVersion in the precondition ({wanted}) "
                                                         "does not match the ResourceVersion in record"))  # fmt: skip
        del self.objects[key]
        owned = [k for k, pod in self.pods.items() if _owned_by(pod, resource)]  # garbage collection
        for pod_key in owned:
            await self.stop_pod(pod_key)
        self._notify("DELETED", key)
        return self._handled(request, web.json_response({"kind": "Status", "status": "Success"}))

    async def patch_object(self, request: web.Request) -> web.Response:
        key = self._object_key(request)
        self.requests.append(f"PATCH {key[0]} {key[2]}")
        resource = self.objects.get(key)
        if resource is None:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        patch = await request.json()
        wanted = (patch.get("metadata") or {}).pop("resourceVersion", None)
        if wanted is not None and wanted != resource["metadata"].get("resourceVersion"):  # optimistic concurrency
            return self._handled(request, _conflict(key, "the object has been modified; please apply your changes "
                                                         "to the latest version and try again"))  # fmt: skip
        spec = copy.deepcopy(resource.get("spec"))
        _merge(resource, patch)
        metadata = resource["metadata"]
        metadata["resourceVersion"] = str(int(metadata.get("resourceVersion", "1")) + 1)
        if resource.get("spec") != spec:  # the API server counts spec changes only
            metadata["generation"] = metadata.get("generation", 1) + 1
        self._notify("MODIFIED", key)
        return self._handled(request, web.json_response(resource))

    def _handled(self, request: web.Request, response: web.Response) -> web.Response:
        """The answer to a custom-object request, after :attr:`after` heard of it; lost (the
        connection dropped) when the request is in :attr:`lose_answers`."""
        line = self.requests[-1]
        if self.after is not None:
            self.after(line)
        if line in self.lose_answers:
            assert request.transport is not None
            request.transport.abort()
        return response

    def start_pod(self, namespace: str, body: dict) -> tuple[str, str]:
        """A pod a controller makes (a driver, a submitter): created and run as a posted pod is."""
        pod = copy.deepcopy(body)
        pod["metadata"].update(
            uid=str(uuid.uuid4()), namespace=namespace, creationTimestamp=_now(), resourceVersion="1"
        )
        pod["status"] = {"phase": "Pending", "conditions": [], "startTime": _now()}
        key = (namespace, pod["metadata"]["name"])
        self.pods[key] = pod
        self.logs[key] = []
        self.done[key] = asyncio.Event()
        self.loop.create_task(self.kubelet(key))
        return key

    async def stop_pod(self, key: tuple[str, str]) -> None:
        """Delete a pod and kill its process, as a kubelet does on deletion."""
        self.pods.pop(key, None)
        process = self.processes.get(key)
        if process is not None and process.returncode is None:
            process.kill()

    async def list_events(self, request: web.Request) -> web.Response:
        self.requests.append("EVENTS")
        return web.json_response({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": []})

    async def read_log(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["ns"], request.match_info["name"])
        self.requests.append(f"LOG {key[1]} follow={request.query.get('follow')}")
        if key not in self.logs:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        stamps = request.query.get("timestamps") == "true"
        while True:
            lines = self.logs[key]
            while sent < len(lines):
                stamp, text = lines[sent]
                await response.write(((stamp + " ") if stamps else "").encode() + text.encode() + b"\n")
                sent += 1
            follow = request.query.get("follow", "").lower() == "true"  # the Python client sends `True`
            if self.done[key].is_set() or not follow:
                if sent >= len(self.logs[key]):
                    break
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    # -- kubelet -------------------------------------------------------------------------------
    def _env(self, container: dict) -> dict[str, str]:
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": _RUNTIME_PATH, **self.extra_env}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
            elif ref := (var.get("valueFrom") or {}).get("secretKeyRef"):
                env[var["name"]] = self.secrets[(ref["name"], ref["key"])]
        return env

    async def kubelet(self, key: tuple[str, str]) -> None:
        pod = self.pods[key]
        container = pod["spec"]["containers"][0]
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        if command and command[0] == "python":
            command[0] = sys.executable
        await asyncio.sleep(0.2)  # scheduling
        workdir = tempfile.mkdtemp(prefix="fake-pod-")
        process = await asyncio.create_subprocess_exec(
            *command,
            env=self._env(container),
            cwd=workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.processes[key] = process
        started = _now()
        base = {"name": container["name"], "image": container["image"], "imageID": image_id(container["image"]),
                "restartCount": 0}  # fmt: skip
        pod["status"].update(
            phase="Running",
            containerStatuses=[{**base, "ready": True, "started": True, "state": {"running": {"startedAt": started}}}],
        )
        assert process.stdout is not None
        async for raw in process.stdout:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            self.logs[key].append((stamp, raw.decode(errors="replace").rstrip("\n")))
        code = await process.wait()
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": started,
                      "finishedAt": _now()}  # fmt: skip
        if code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            terminated["message"] = "\n".join(text for _, text in self.logs[key][-80:])[-2048:]
        if key in self.pods:
            pod["status"].update(
                phase="Succeeded" if code == 0 else "Failed",
                containerStatuses=[{**base, "ready": False, "started": False, "state": {"terminated": terminated}}],
            )
        self.done[key].set()
