"""`aq-airflow demo-ui` from the built wheel: the example pipeline run for two dates in a local
Airflow, its quality page served over HTTP to the printed login, and every process gone on
SIGTERM. The wheel and its venv are the session's (``production_venv``): nothing of this
checkout (``tests``, ``bench``) is importable there."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil

from aq_airflow.devstack.ports import free_port, port_free

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "example_dags" / "churn_scoring.aq.yaml"
DATES = ("2026-02-27", "2026-02-28")
STRICT = "2026-02-27"  # run with min_rows 6000: more customers than the warehouse has
URL = re.compile(r"the quality pages: (http://127\.0\.0\.1:\d+)/aq-quality/")
LOGIN = re.compile(r"log in as user: (\S+) password: (\S+)")


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _wait_for_login(process: subprocess.Popen, lines: queue.Queue, seen: list[str], timeout: float):
    url = login = None
    deadline = time.monotonic() + timeout
    while url is None or login is None:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"demo-ui printed no URL and login in {timeout:.0f}s:\n{''.join(seen)}") from None
        if line is None:
            raise AssertionError(f"demo-ui exited ({process.wait()}) before serving:\n{''.join(seen)}")
        seen.append(line)
        url = url or (URL.search(line) and URL.search(line).group(1))
        login = login or (LOGIN.search(line) and LOGIN.search(line).groups())
    return url, login


def _processes_under(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_demo_ui_from_the_wheel_serves_the_quality_page_and_stops_everything(production_venv, tmp_path):
    work = tmp_path / "demo"
    work.mkdir()
    seed = [production_venv.python, REPO / "example_dags" / "seed_warehouse.py", work / "warehouse.duckdb"]
    seeded = subprocess.run([*seed, "--customers", "2000", "--order-events", "20000"], capture_output=True, text=True)
    assert seeded.returncode == 0, seeded.stderr
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AQ_", "PYTHON", "VIRTUAL_ENV"))}
    command = [str(production_venv.bin / "aq-airflow"), "demo-ui", str(SPEC), "--workdir", str(work),
               "--port", str(port), "--first-date", DATES[0], "--days", str(len(DATES)),
               "--conf", f'{STRICT}={{"min_rows": 6000}}']  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    started: list[psutil.Process] = []
    try:
        url, (user, password) = _wait_for_login(process, lines, seen, timeout=900)
        assert url == f"http://127.0.0.1:{port}" and user == "demo"
        started = _processes_under(process.pid)
        assert any(f"port:{port}" in " ".join(p.cmdline()) for p in started), [p.cmdline() for p in started]

        assert httpx.get(f"{url}/aq-quality/dags/churn_scoring", timeout=30).status_code == 401  # no login
        token = httpx.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=30)
        assert token.status_code == 201, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            page = client.get("/aq-quality/dags/churn_scoring")
            assert page.status_code == 200, page.text[:2000]
            for check in ("ids_not_null", "prob_in_range", "one_row_per_customer", "enough_rows"):
                assert check in page.text
            rows = client.get("/aq-quality/api/dags/churn_scoring/checks", params={"limit": 500}).json()["items"]
        verdicts = {(r["name"], r["logical_date"][:10]): r["verdict"] for r in rows}
        assert {date for _, date in verdicts} == set(DATES)
        assert {key for key, verdict in verdicts.items() if verdict != "passed"} == {("enough_rows", STRICT)}
        assert verdicts["enough_rows", STRICT] == "failed"
    finally:  # SIGTERM, as a user's `kill` or a service manager stops it; whatever is left is killed
        started = started or (_processes_under(process.pid) if process.poll() is None else [])
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            code = None
        _, alive = psutil.wait_procs(started, timeout=30)
        for leftover in alive:
            leftover.kill()
    assert code == 0, "".join(seen) + "".join(iter(lines.get, None))
    assert alive == [], [p.cmdline() for p in alive]
    assert port_free(port)
