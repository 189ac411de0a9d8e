"""``aq-airflow serve``: pipelines' promoted models behind one real model server on this machine.

The endpoints are the spec's `serve:` steps (for a dag_id: the promotions in the store that name
it); each one's version is the one its ``current.json`` records in the store the runs wrote to
(found as ``aq-airflow show`` finds it: ``--artifacts``, else ``--workdir``'s ``artifacts/``, else
the spec's, ...: ``cli.run_lookup``). MLServer (``serving.model_server``) serves them all in the
foreground until Ctrl-C or SIGTERM; the lines printed say the endpoints and a ``curl`` to paste.
"""

from __future__ import annotations

import json
import shlex
import signal
import socket
import sys
from contextlib import ExitStack

import pyarrow.fs as pafs

from aq_airflow.artifacts.model_repository import MODELS_FOLDER, Promotion
from aq_airflow.artifacts.store import filesystem
from aq_airflow.cli.run_lookup import STORE_ERRORS, LookupFailed, is_spec, resolve
from aq_airflow.cli.terminal import visible


class ServeFailed(Exception):
    """Nothing to serve, or the server did not start: the message says why and what to do."""


def serve(targets: list[str], artifacts: str | None, workdir: str | None, host: str, port: int) -> int:
    """Serve the promoted endpoints of every pipeline in ``targets`` in one model server."""
    try:
        promotions: dict[str, Promotion] = {}
        roots: dict[str, str] = {}  # each endpoint's store
        for target in targets:
            found, root = _promotions(target, artifacts, workdir)
            for promotion in found:
                other = promotions.get(promotion.endpoint)
                if other is not None and (other, roots[promotion.endpoint]) != (promotion, root):
                    raise ServeFailed(f"endpoint `{promotion.endpoint}` is promoted by both {other.dag_id} and "
                                      f"{promotion.dag_id}: serve one of them at a time")  # fmt: skip
                promotions[promotion.endpoint] = promotion
                roots[promotion.endpoint] = root
        return _serve(list(promotions.values()), roots, host, port)
    except (LookupFailed, ServeFailed) as error:
        print(visible(str(error), newlines=True), file=sys.stderr)
        return 1


def _endpoints(target: str) -> list[str] | None:
    """The endpoints a spec's `serve:` steps name (None for a dag_id: the store's promotions say)."""
    if not is_spec(target):
        return None
    from aq_airflow.pipeline_spec import SpecError
    from aq_airflow.plan import compile_spec
    from aq_airflow.plan.model import TaskRole

    try:
        plan = compile_spec(target)
    except SpecError as error:  # located problems, an unreadable file too
        raise ServeFailed(str(error)) from None
    endpoints = [task.body.endpoint for task in plan.tasks if task.role == TaskRole.SERVE]
    if not endpoints:
        raise ServeFailed(f"{target} has no step with `serve:`: add `serve: {{endpoint: NAME, format: sklearn}}` "
                          "to the step that returns the model")  # fmt: skip
    return endpoints


def _promotions(target: str, artifacts: str | None, workdir: str | None) -> tuple[list[Promotion], str]:
    """The promoted version of each endpoint of the pipeline, and the store root."""
    endpoints = _endpoints(target)
    try:
        found = resolve(target, artifacts, workdir, runs=False)
    except LookupFailed as error:
        raise ServeFailed(f"no promoted model to serve: {error}; run the pipeline first (`{_run_line(target)}`), its "
                          "serve task promotes the model once its checks pass") from None  # fmt: skip
    from aq_airflow.serving.promotion import read_current

    root = found.root
    try:
        if endpoints is None:
            endpoints = _promoted_endpoints(root, found.dag_id)
        promotions = {endpoint: read_current(root, endpoint) for endpoint in endpoints}
    except (*STORE_ERRORS, ValueError) as error:
        raise ServeFailed(f"cannot read the promoted models in {root}/{MODELS_FOLDER}: {error}") from None
    missing = [endpoint for endpoint, promotion in promotions.items() if promotion is None]
    if missing or not promotions:
        names = f"endpoint {', '.join(f'`{e}`' for e in missing)}" if missing else f"pipeline `{found.dag_id}`"
        raise ServeFailed(
            f"no promoted version of {names} in {root}/{MODELS_FOLDER} (the store from {found.where}): run "
            f"the pipeline first (`{_run_line(target)}`); its serve task promotes the model once its checks pass"
        )
    return list(promotions.values()), root  # type: ignore[arg-type]


def _run_line(target: str) -> str:
    return f"aq-airflow run {target if is_spec(target) else 'SPEC'}"


def _promoted_endpoints(root: str, dag_id: str) -> list[str]:
    """The endpoints in the store whose promoted version the pipeline ``dag_id`` made."""
    from aq_airflow.serving.promotion import read_current

    fs, path = filesystem(f"{root.rstrip('/')}/{MODELS_FOLDER}")
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    names = sorted(info.base_name for info in infos if info.type == pafs.FileType.Directory)
    found = []
    for name in names:
        try:
            promotion = read_current(root, name)
        except ValueError as error:  # another pipeline's broken record does not stop this one's endpoints
            print(visible(f"left out: {error}", newlines=True), file=sys.stderr)
            continue
        if promotion is not None and promotion.dag_id == dag_id:
            found.append(name)
    return found


def _serve(promotions: list[Promotion], roots: dict[str, str], host: str, port: int) -> int:
    from aq_airflow.serving.layout import SIGNATURE, local_folder
    from aq_airflow.serving.model_server import ModelServer, ModelServerError, free_port

    port = free_port(host) if port == 0 else _unused(host, port)
    with ExitStack() as stack:
        folders = {}
        for promotion in promotions:
            # the version's folder in the store read (not current.json's storage_uri: a store copied
            # or moved elsewhere serves from where it is now, and a record naming a folder outside
            # the store is never followed)
            where = promotion.model_version.location(roots[promotion.endpoint])
            try:
                folders[promotion.endpoint] = stack.enter_context(local_folder(where))
            except (*STORE_ERRORS, FileNotFoundError) as error:
                raise ServeFailed(f"cannot read {where}, the promoted version of `{promotion.endpoint}`: "
                                  f"{error}") from None  # fmt: skip
        root = ", ".join(dict.fromkeys(roots.values()))
        print(f"starting MLServer for {len(promotions)} endpoint(s) from {root} ...", flush=True)
        try:
            server = stack.enter_context(ModelServer(folders, host=host, port=port))
        except ModelServerError as error:
            raise ServeFailed(str(error)) from None
        print(f"serving on {server.url} (Open Inference Protocol v2); Ctrl-C stops", flush=True)
        for promotion in promotions:
            with open(f"{folders[promotion.endpoint]}/{SIGNATURE}") as handle:
                signature = json.load(handle)["inputs"]
            print(f"\n  {promotion.endpoint}: {promotion.version} ({promotion.format}), promoted by "
                  f"{promotion.dag_id} run {promotion.run_id} at {promotion.promoted_at}")  # fmt: skip
            inputs = ", ".join(f"{item['name']} {item['datatype']}" for item in signature)
            print(f"    inputs: {inputs}")
            print(f"    curl -s {server.url}/v2/models/{promotion.endpoint}/infer -H 'Content-Type: application/json' "
                  f"-d {shlex.quote(json.dumps(_example(signature)))}")  # fmt: skip
        sys.stdout.flush()
        previous = signal.signal(signal.SIGTERM, _stopped)
        try:
            code = server.wait()
        except (KeyboardInterrupt, Stopped):  # the ExitStack stops the server
            code = None
        finally:
            signal.signal(signal.SIGTERM, previous)
        if code is not None:
            print(f"the model server exited ({code})\n{server.log_tail()}", file=sys.stderr)
            return 1
    print("stopped", flush=True)
    return 0


def _unused(host: str, port: int) -> int:
    """``port``, once nothing listens on it: a server already there (Airflow's api-server takes
    8080 too, or another ``aq-airflow serve``) would answer the readiness probe in place of ours."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServeFailed(
                f"port {port} on {host} is in use ({error.strerror}): pass `--port 0` for any free port, or "
                "`--port N` for another"
            ) from None
    return port


class Stopped(Exception):
    """SIGTERM: leave the wait, as Ctrl-C does, and stop the server on the way out."""


def _stopped(_number, _frame) -> None:
    raise Stopped


def _example(signature: list[dict]) -> dict:
    """A one-row request of the signature's columns (zeros, false, empty text) to paste and edit."""
    values = {"BOOL": False, "BYTES": ""}
    inputs = []
    for item in signature:
        value = values.get(item["datatype"], 0.0 if item["datatype"].startswith("FP") else 0)
        entry = {"name": item["name"], "shape": [1], "datatype": item["datatype"], "data": [value]}
        if item["datatype"] == "BYTES":
            entry["parameters"] = {"content_type": "str"}
        inputs.append(entry)
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}
