"""A deployment preflight: load a dags folder through Airflow's own DagBag and report."""

from __future__ import annotations


def _schedule(dag) -> str:
    """How a placeholder runs: on the schedule it kept, or only when triggered."""
    if dag.schedule is None:
        return "runs only when triggered"
    kept = dag.schedule if isinstance(dag.schedule, str) else "after its tables change"
    return f"keeps its schedule ({kept}): each run fails"


def show_dagbag(folder: str) -> int:
    """Lists the DAGs Airflow finds with each invalid spec's located errors, the other import
    errors, and (as ``validate`` does) each local-runner step whose module is not beside its
    spec; 1 when any of them is there."""
    from airflow.dag_processing.dagbag import DagBag

    from aq_airflow.cli.specs import check, code_check
    from aq_airflow.live_dags import INVALID_TAG
    from aq_airflow.pipeline_spec import SPEC_SUFFIXES

    bag = DagBag(dag_folder=folder)
    invalid = 0
    for dag_id in sorted(bag.dags):
        dag = bag.dags[dag_id]
        if INVALID_TAG not in dag.tags:
            print(f"{'ok':8} {dag_id:40} {len(dag.tasks):3} task(s)  {dag.description or ''}")
            continue
        invalid += 1
        print(f"{'INVALID':8} {dag_id:40} {len(dag.tasks):3} task(s)  {_schedule(dag)}")
        for error in dag.get_task("invalid_spec").errors:
            print(f"    {error}")
    # a broken spec is also an import error of its own file (the same errors, listed above)
    others = {path: error for path, error in bag.import_errors.items() if not path.endswith(SPEC_SUFFIXES)}
    for path, error in sorted(others.items()):
        print(f"IMPORT ERROR {path}: {error}")
    planned = [spec for spec in check([folder]) if spec.plan is not None and not spec.issues]
    code_check(planned)  # the specs that plan (the others are the invalid DAGs above)
    code = [issue for spec in planned for issue in spec.issues]
    for issue in code:
        print(f"STEP CODE {issue}")
    print(
        f"{len(bag.dags)} DAG(s), {invalid} invalid spec(s), {len(others)} import error(s), "
        f"{len(code)} step(s) whose code is not beside its spec"
    )
    return 1 if invalid or others or code else 0
