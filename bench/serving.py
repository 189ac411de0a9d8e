"""`make bench` (serving): a promoted model on loopback, from commit to answer, and per request.

The churn example's model (``example_dags/churn/train.py``: a scikit-learn pipeline) is fit on
ROWS synthetic feature rows and committed as a step output, as ``train`` commits it. Then:

* commit to answer: what the local serve task does with it: read the committed model (digest
  checked), write the sklearn version folder (``serving.layout``), start MLServer on it
  (``serving.model_server``, its venv already built: ``make install`` builds it) until it and the
  model are ready, and the first inference answered (the smoke test's 5 rows). Median of ROUNDS,
  each on a fresh store (a version is written once).
* per request: p50 and p99 of REQUESTS requests of 1 and of 100 rows to that server (the Open
  Inference Protocol's JSON, the pandas codec; one keep-alive HTTP connection, as a client
  library holds one), against the same model's ``predict`` on a DataFrame of those rows in this
  process. The ratio is what serving over HTTP costs on top of the model itself.

Nothing here asserts a time; tests/test_serving_layout.py and tests/test_serve_local.py check
the behaviour.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "example_dags"))

import numpy as np
import pandas as pd
import pyarrow as pa
from churn.train import fit

from aq_airflow.artifacts.model_repository import ModelVersion
from aq_airflow.artifacts.store import Location
from aq_airflow.artifacts.values import write_output
from aq_airflow.plan.model import ModelFormat
from aq_airflow.serving.layout import model_columns, read_model, write_version
from aq_airflow.serving.model_server import ModelServer, server_python
from aq_airflow.serving.oip import smoke_test
from aq_airflow.serving.signature import Signature, inference_request
from bench.machine import settle


def features(rows: int) -> pd.DataFrame:
    """Rows shaped like the churn example's `features` table."""
    rng = np.random.default_rng(7)
    tenure = rng.integers(1, 2000, rows)
    frame = pd.DataFrame(
        {
            "tenure_days": tenure,
            "orders_90d": rng.integers(0, 30, rows),
            "spend_90d": rng.gamma(2.0, 40.0, rows).round(2),
            "monthly_fee": rng.choice([9.99, 19.99, 29.99], rows),
            "is_premium": rng.integers(0, 2, rows),
        }
    )
    frame["churned"] = (rng.random(rows) < 1 / (1 + tenure / 300)).astype(int)
    return frame


def commit_to_answer(
    model, rows: pa.Table, signature: Signature, root: str, stack: ExitStack
) -> tuple[dict[str, float], ModelServer]:
    """One promotion's phases, in seconds, on the store ``root``; the server runs until ``stack`` closes."""
    location = Location.of(f"{root}/bench/run/train")
    manifest = location.commit({**write_output(location, location.begin(), model), "step": "train"})
    phases = {}
    started = time.perf_counter()
    committed = read_model(location, location.read_output("train"), "train")
    version = ModelVersion.of("churn", manifest["digests"][manifest["files"][0]], "sklearn", signature.to_json())
    folder = write_version(committed, ModelFormat.SKLEARN, version, root, signature)
    phases["read + write the version"] = time.perf_counter() - started
    mark = time.perf_counter()
    server = stack.enter_context(ModelServer({"churn": folder}))
    phases["MLServer start to ready"] = time.perf_counter() - mark
    mark = time.perf_counter()
    smoke_test(server.url, "churn", rows.slice(0, 5), signature)
    phases["first answer (5 rows)"] = time.perf_counter() - mark
    phases["committed to answering"] = time.perf_counter() - started
    return phases, server


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def in_process(model, frame: pd.DataFrame, requests: int) -> list[float]:
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        model.predict(frame)
        seconds.append(time.perf_counter() - started)
    return seconds


def over_http(url: str, body: dict, requests: int) -> list[float]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    data = json.dumps(body).encode()
    seconds = []
    try:
        for _ in range(requests + 5):  # the first 5 warm the connection and the codec, not counted
            started = time.perf_counter()
            connection.request("POST", "/v2/models/churn/infer", data, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise SystemExit(f"the server answered {response.status}: {answer[:500]!r}")
            seconds.append(time.perf_counter() - started)
    finally:
        connection.close()
    return seconds[5:]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000, help="training rows")
    parser.add_argument("--rounds", type=int, default=3, help="promotions timed (median)")
    parser.add_argument("--requests", type=int, default=300, help="requests per size")
    parser.add_argument("--max-load", type=float, default=None, help="wait for the 1-minute load to fall to this")
    args = parser.parse_args()
    server_python()  # the model server venv: built once, not timed
    frame = features(args.rows)
    model = fit(frame)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = model_columns(model)
    signature = Signature.of_schema(table.schema, columns)
    load = settle(args.max_load, 300)

    rounds = []
    server: ModelServer | None = None
    with ExitStack() as stack:
        for _ in range(args.rounds):
            if server is not None:
                server.stop()  # one server at a time: the last one answers the requests below
            root = stack.enter_context(tempfile.TemporaryDirectory(prefix="aq-bench-serving-"))
            phases, server = commit_to_answer(model, table.select(columns), signature, root, stack)
            rounds.append(phases)
        latency = []
        for size in (1, 100):
            rows = table.select(columns).slice(0, size)
            local = percentiles(in_process(model, rows.to_pandas(), args.requests))
            served = percentiles(over_http(server.url, inference_request(rows, signature), args.requests))
            latency.append((size, local, served))

    print(f"\nserving: the churn example's model (sklearn pipeline, {args.rows} training rows), MLServer 1.7.1 on "
          f"loopback; load {load:.1f} at start\n")  # fmt: skip
    print(f"commit to answer (median of {args.rounds})")
    print(f"| {'phase':32} | {'seconds':>8} |")
    print(f"|{'-' * 34}|{'-' * 10}|")
    medians = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    for name, value in medians.items():
        print(f"| {name:32} | {value:8.3f} |")
    print(f"\nper request ({args.requests} each; HTTP: one keep-alive connection, OIP JSON, pandas codec)")
    print(f"| {'rows':>4} | {'predict p50 ms':>14} | {'HTTP p50 ms':>11} | {'ratio':>6} | "
          f"{'predict p99 ms':>14} | {'HTTP p99 ms':>11} | {'ratio':>6} |")  # fmt: skip
    print(f"|{'-' * 6}|{'-' * 16}|{'-' * 13}|{'-' * 8}|{'-' * 16}|{'-' * 13}|{'-' * 8}|")
    for size, (local50, local99), (served50, served99) in latency:
        print(f"| {size:>4} | {local50:14.3f} | {served50:11.3f} | {served50 / local50:6.1f} | "
              f"{local99:14.3f} | {served99:11.3f} | {served99 / local99:6.1f} |")  # fmt: skip
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "serving.json").write_text(json.dumps({"commit_to_answer_s": medians, "latency_ms": [
        {"rows": size, "predict_p50": l50, "predict_p99": l99, "http_p50": s50, "http_p99": s99}
        for size, (l50, l99), (s50, s99) in latency
    ], "load": load}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
