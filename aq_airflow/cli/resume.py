"""``aq-airflow run SPEC --from STEP`` / ``--steps a,b``: re-run part of a pipeline in a new run,
reusing the committed outputs of the latest successful earlier run for everything upstream.

"Successful" is what the earlier ``aq-airflow run`` recorded in its run folder (``_run.json``,
:mod:`aq_airflow.client.runs`); "committed" is a valid manifest, read, never guessed from file
names. A reused step's outputs are copied into the new run's folder (data files first, the
manifest last, so the copy commits like a step's own write; a mapped step's ``_items.json`` and
every item), and none of its tasks runs, with one exception: when a re-run step's ``when:``
reads a reused step's checks or metrics, those run again over the copied output, since a
condition reads this run's results only. A ``table`` step that no python step reads has no
output to copy: upstream, it is simply not run; selected, its checks and metrics run.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from aq_airflow.artifacts.store import Location, MissingArtifact
from aq_airflow.client.runs import RunFolder, list_runs
from aq_airflow.plan.conditions import results_tasks
from aq_airflow.plan.model import DagPlan, RunPlan, TaskRole, WhenPlan


class ResumeError(Exception):
    """Resuming cannot start: an unknown step, no successful earlier run, or an upstream output
    that is not committed (the message names it)."""


@dataclass(frozen=True)
class Resume:
    """What a resumed run runs and what it takes from the earlier run ``source``."""

    source: RunFolder
    run_steps: tuple[str, ...]  # steps whose tasks run, in plan order
    reused: tuple[str, ...]  # upstream steps whose outputs are copied (or that have none to copy)
    task_ids: frozenset[str]  # the tasks that run

    def describe(self) -> str:
        day = (self.source.record or {}).get("logical_date", "")[:10] or "unknown"
        return (
            f"resuming from run {self.source.run_id} (logical date {day}): "
            f"reusing {', '.join(self.reused) or 'nothing'}; running {', '.join(self.run_steps)}"
        )


def _steps(plan: DagPlan) -> list[str]:
    return list(dict.fromkeys(task.group for task in plan.tasks))


def _upstream_steps(plan: DagPlan) -> dict[str, set[str]]:
    """Each step's direct upstream steps, from its tasks' upstream tasks in other steps."""
    group = {task.task_id: task.group for task in plan.tasks}
    upstream: dict[str, set[str]] = {step: set() for step in _steps(plan)}
    for task in plan.tasks:
        upstream[task.group] |= {group[u] for u in task.upstream if group[u] != task.group}
    return upstream


def _closure(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        for other in edges[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _known(plan: DagPlan, name: str, flag: str) -> str:
    steps = _steps(plan)
    if name in steps:
        return name
    close = difflib.get_close_matches(name, steps, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    raise ResumeError(f"{flag} {name}: pipeline `{plan.dag_id}` has no step `{name}`{hint} (steps: {', '.join(steps)})")


def select(plan: DagPlan, from_step: str | None, steps: str | None) -> tuple[list[str], list[str], set[str]]:
    """(steps to run, upstream steps to reuse, task ids to run) for ``--from`` / ``--steps``."""
    upstream = _upstream_steps(plan)
    if from_step is not None:
        start = _known(plan, from_step, "--from")
        downstream = {s: {t for t, ups in upstream.items() if s in ups} for s in upstream}
        chosen = {start} | _closure({start}, downstream)
    else:
        names = [name.strip() for name in (steps or "").split(",") if name.strip()]
        if not names:
            raise ResumeError("--steps: name at least one step, e.g. --steps train,scores")
        chosen = {_known(plan, name, "--steps") for name in names}
    reused = _closure(chosen, upstream) - chosen
    order = _steps(plan)
    group = {task.task_id: task.group for task in plan.tasks}
    tasks = {task.task_id for task in plan.tasks if task.group in chosen}
    for task in plan.tasks:  # a condition reads this run's results: the reused steps' it reads run again
        if task.task_id in tasks and isinstance(task.body, WhenPlan):
            tasks |= {t for t in results_tasks(task.body.condition) if group.get(t) in reused}
    return [s for s in order if s in chosen], [s for s in order if s in reused], tasks


def _outputs(plan: DagPlan) -> dict[str, RunPlan]:
    """The steps that write an output to the store, with their run plans."""
    return {t.group: t.body for t in plan.tasks if t.role == TaskRole.RUN and isinstance(t.body, RunPlan)}


def prepare(plan: DagPlan, root: str, from_step: str | None, steps: str | None, day: str | None = None) -> Resume:
    """Choose what runs and the earlier run to reuse: among the successful runs that hold every
    output to reuse (a resumed run holds only what it needed), the latest of the same logical
    date ``day`` (YYYY-MM-DD) when there is one, else the latest (its date is printed); and check
    that every reused output is committed there (read, not guessed). Raises :class:`ResumeError`."""
    run_steps, reused, task_ids = select(plan, from_step, steps)
    runs = list_runs(root, plan.dag_id)
    successful = [run for run in runs if run.state == "success"]
    if not successful:
        seen = ", ".join(f"{r.run_id} ({r.state or 'no run record'})" for r in runs[-5:]) or "none"
        raise ResumeError(
            f"no successful earlier run of `{plan.dag_id}` in {root}/{plan.dag_id} to resume from "
            f"(runs there: {seen}); run the whole pipeline once first"
        )
    outputs = _outputs(plan)
    needed = [step for step in reused if step in outputs]
    holding = [run for run in successful if all(s in run.steps and run.steps[s].committed for s in needed)]
    candidates = holding or successful[-1:]  # none holds them all: the latest says which is missing
    same_day = [run for run in candidates if day and (run.record or {}).get("logical_date", "")[:10] == day]
    source = (same_day or candidates)[-1]
    for step in reused:
        if step in outputs:
            _verify(source, step, outputs[step].foreach is not None)
    return Resume(source, tuple(run_steps), tuple(reused), frozenset(task_ids))


def _verify(source: RunFolder, step: str, mapped: bool) -> None:
    folder = source.location.child(step)
    try:
        if not mapped:
            _manifest(folder, step)
            return
        from aq_airflow.artifacts.items import read_items

        for index in range(len(read_items(folder, step))):
            _manifest(folder.child(str(index)), step)
    except (MissingArtifact, ValueError) as error:
        raise ResumeError(
            f"step `{step}` is upstream of what --from/--steps runs, but run {source.run_id} (the latest "
            f"successful one) has no committed output of it: {error}"
        ) from None


def _manifest(location: Location, step: str) -> dict:
    """The committed manifest (its shape checked: a kind, plain file names); the files are held
    to it when they are copied (:func:`_copy`)."""
    return location.read_manifest(step)


def copy_outputs(plan: DagPlan, resume: Resume, root: str, run_id: str) -> list[str]:
    """Copy each reused output of ``resume.source`` into run ``run_id``'s folder, committed by
    its manifest (which records where it came from). Returns a line for each output copied from a
    manifest without digests (checked for rows and schema only: say so). Raises :class:`ResumeError`."""
    from aq_airflow.artifacts.items import read_items, write_items

    outputs = _outputs(plan)
    notes: list[str] = []
    for step in resume.reused:
        if step not in outputs:
            continue  # a table step read in the warehouse: nothing in the store
        ref = outputs[step].output
        source = resume.source.location.child(ref.step)  # the folder the listing found, by path
        target = Location.of(ref.location(root, run_id))
        if outputs[step].foreach is None:
            notes += _copy(source, target, step, resume.source.run_id)
            continue
        try:
            items = read_items(source, step)
        except MissingArtifact as error:
            raise ResumeError(f"step `{step}`: run {resume.source.run_id}'s output is not reused: {error}") from None
        write_items(target, items)
        for index in range(len(items)):
            notes += _copy(source.child(str(index)), target.child(str(index)), step, resume.source.run_id)
    return notes


# what a copy's `reused_from` says when its source had no digests to hold the bytes to
UNVERIFIED = "rows and schema checked; the source had no digests (written before aq-airflow recorded them)"


def _copy(source: Location, target: Location, step: str, run_id: str) -> list[str]:
    """Copy one output's files, hold the copies to the source's manifest (digests, a table's rows
    and schema: a source changed since its commit is refused, not reused), then commit the copy
    with that manifest: its digests stay valid, the bytes being the same.

    A source of the release before digests has none: it is checked (rows, schema) before anything
    is copied, and its copy, which the commit hashes, says so in ``reused_from`` (``verified``)
    and in the returned line, rather than looking as verified as a copy of a digested output."""
    manifest = _manifest(source, step)
    legacy = manifest.get("digests") is None
    if legacy:
        try:
            source.verified(manifest, step)
        except MissingArtifact as error:
            raise ResumeError(f"step `{step}`: run {run_id}'s output is not reused: {error}") from None
    target.begin()
    for name in manifest["files"]:
        try:
            target.fs.copy_file(source.join(name), target.join(name))
        except OSError as error:  # a file the manifest names is gone, or the store refused the copy
            raise ResumeError(f"step `{step}`: cannot copy {source.uri}/{name} from run {run_id}: {error}") from None
    try:
        target.verified(manifest, step)
    except MissingArtifact as error:
        # the copies hold the source's bytes: what disagrees is the source, named as such; the
        # copies go (this copy wrote them), leaving no uncommitted file in the new run's folder
        for name in manifest["files"]:
            try:
                target.fs.delete_file(target.join(name))
            except OSError:
                pass
        why = str(error).replace(target.uri, source.uri)
        raise ResumeError(f"step `{step}`: run {run_id}'s output is not reused: {why}") from None
    reused = {"run_id": run_id, "uri": source.uri, **({"verified": UNVERIFIED} if legacy else {})}
    target.commit({**manifest, "uri": target.uri, "reused_from": reused})
    if not legacy:
        return []
    return [f"step `{step}`: reused {source.uri} with its {UNVERIFIED}; its copy's digests are of the bytes copied"]
