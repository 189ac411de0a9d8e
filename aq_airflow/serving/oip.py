"""The Open Inference Protocol (v2) over HTTP, as a client calls it: readiness, inference, and the
smoke test the serve task runs against a version before the endpoint is pointed at it.

Plain ``urllib``: the serve task, ``aq-airflow serve``, the tests' KServe controller and the bench
call a model server the way a user's client would, with nothing between.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aq_airflow.serving.signature import Signature, inference_request, response_problem

#: seconds an inference call may take (a smoke test's few rows; a cold model's first call)
INFER_TIMEOUT = 60.0
POLL_SECONDS = 0.2


class OipError(Exception):
    """An Open Inference Protocol call that got no answer, or an error status: what was called and
    what came back."""


class SmokeFailed(Exception):
    """The endpoint's answer to the smoke test's rows was an error or not a prediction per row:
    the reason, readable (what was sent, what came back)."""


@dataclass(frozen=True)
class SmokeResult:
    latency_ms: float  # the smoke test's request, sent to answered
    rows: int


def call(url: str, body: dict | None = None, timeout: float = INFER_TIMEOUT) -> tuple[int, Any]:
    """GET ``url`` (or POST ``body`` as JSON): the status and the decoded JSON answer (the text
    where it is not JSON). A refused or timed-out connection raises :class:`OipError`."""
    if not url.startswith(("http://", "https://")):
        raise OipError(f"{url}: not an http(s) URL")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - http(s) only, above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise OipError(f"{url}: {getattr(error, 'reason', error)}") from None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


def wait_ready(base_url: str, endpoint: str, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    """Until the server is ready (``/v2/health/ready``) and so is ``endpoint``'s model
    (``/v2/models/<endpoint>/ready``); :class:`OipError` after ``timeout`` seconds, or as soon as
    ``alive`` (the server process's) says it exited."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    for path in ("/v2/health/ready", f"/v2/models/{endpoint}/ready"):
        while True:
            if alive is not None and not alive():
                raise OipError(f"the model server exited before {base_url}{path} answered ready")
            try:
                status, answer = call(base_url + path, timeout=5)
                if status == 200:
                    break
                last = f"{status} {answer}"
            except OipError as error:
                last = str(error)
            if time.monotonic() > deadline:
                raise OipError(f"{base_url}{path} not ready after {timeout:.0f} s (last: {last})")
            time.sleep(POLL_SECONDS)


def infer(base_url: str, endpoint: str, body: dict, timeout: float = INFER_TIMEOUT) -> dict:
    """``POST /v2/models/<endpoint>/infer``: the response, or :class:`OipError` with the status
    and the server's error."""
    url = f"{base_url}/v2/models/{endpoint}/infer"
    status, answer = call(url, body, timeout)
    if status != 200:
        detail = answer.get("error", answer) if isinstance(answer, dict) else answer
        raise OipError(f"POST {url} answered {status}: {str(detail)[:1000]}")
    if not isinstance(answer, dict):
        raise OipError(f"POST {url} answered {str(answer)[:200]!r}, not a JSON object")
    return answer


def smoke_test(base_url: str, endpoint: str, rows, signature: Signature) -> SmokeResult:
    """Post ``rows`` (a pyarrow table of the signature's columns) to the endpoint and check the
    answer holds a prediction per row (numbers or booleans); :class:`SmokeFailed` says what was
    sent and what came back."""
    body = inference_request(rows, signature)
    sent = f"{rows.num_rows} rows of {', '.join(f'{n} {t}' for n, t in signature.inputs)}"
    started = time.perf_counter()
    try:
        answer = infer(base_url, endpoint, body)
    except OipError as error:
        raise SmokeFailed(f"the smoke test sent {sent}; {error}") from None
    latency_ms = (time.perf_counter() - started) * 1000
    problem = response_problem(answer, rows.num_rows)
    if problem is not None:
        shown = json.dumps(answer.get("outputs", answer))[:500]
        raise SmokeFailed(f"the smoke test sent {sent}; {problem} (outputs: {shown})")
    return SmokeResult(latency_ms=latency_ms, rows=rows.num_rows)
