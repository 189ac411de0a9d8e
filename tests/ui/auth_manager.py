"""A test-side auth manager: Airflow's SimpleAuthManager with per-DAG denials.

SimpleAuthManager grants DAG access by role only, so "a user who may not read this DAG" cannot
be said with it. This subclass (a real Airflow extension point, configured with
``[core] auth_manager = tests.ui.auth_manager.DagDenyingAuthManager``) keeps everything of the
simple auth manager (users, passwords file, login page, tokens, roles) and adds one rule read
from Airflow's configuration:

    [aq_test_auth]
    denied = outsider:ui_orders, someone:other_dag

Each ``user:dag_id`` pair is refused every method on that DAG (``is_authorized_dag``), and the
DAG is left out of the user's readable DAGs (``get_authorized_dag_ids`` /
``filter_authorized_dag_ids``), as a real deployment's per-DAG permissions would.
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.configuration import conf


def denied_pairs() -> set[tuple[str, str]]:
    pairs = set()
    for item in conf.get("aq_test_auth", "denied", fallback="").split(","):
        user, _, dag_id = item.strip().partition(":")
        if user and dag_id:
            pairs.add((user, dag_id))
    return pairs


class DagDenyingAuthManager(SimpleAuthManager):
    """SimpleAuthManager, except that the ``[aq_test_auth] denied`` pairs are refused."""

    @staticmethod
    def _denied(user, dag_id: str | None) -> bool:
        return dag_id is not None and (user.get_name(), dag_id) in denied_pairs()

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if details is not None and self._denied(user, details.id):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    def filter_authorized_dag_ids(self, *, dag_ids, user, method="GET", team_name=None) -> set[str]:
        allowed = super().filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method=method, team_name=team_name)
        return {dag_id for dag_id in allowed if not self._denied(user, dag_id)}

    def get_authorized_dag_ids(self, *, user, method="GET", session=None) -> set[str]:
        kwargs = {"session": session} if session is not None else {}
        allowed = super().get_authorized_dag_ids(user=user, method=method, **kwargs)
        return {dag_id for dag_id in allowed if not self._denied(user, dag_id)}
