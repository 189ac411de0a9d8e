"""A failing ray step's message: Ray's task error as a log shows it, without a terminal's colour
codes and with the user's frames (no Ray is started: the error is Ray's own class)."""

from __future__ import annotations

import pytest

ray_exceptions = pytest.importorskip("ray.exceptions")

from aq_airflow.runtime.ray import RayEngine  # noqa: E402


def boom(n: int) -> None:
    raise ValueError(f"bad value {n}")


def test_a_task_error_loses_its_colour_codes_and_keeps_the_users_frames():
    try:
        boom(3)
    except ValueError as cause:
        import traceback

        remote = "".join(traceback.format_exception(cause))
        error = ray_exceptions.RayTaskError("boom", remote, cause, proctitle="ray::boom", pid=7, ip="127.0.0.1")
    assert "\x1b[36m" in str(error)  # what Ray gives: its task's name coloured for a terminal
    try:
        raise error.as_instanceof_cause()
    except Exception as raised:
        text = RayEngine().failure(raised)
    assert "\x1b[" not in text, text
    assert "ray::boom() (pid=7, ip=127.0.0.1)" in text
    assert 'in boom\n    raise ValueError(f"bad value {n}")' in text and "ValueError: bad value 3" in text
    assert "test_ray_failure_text.py" in text  # the user's frames stay
