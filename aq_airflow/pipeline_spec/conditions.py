"""`when:` conditions: a small declarative language, data and never code.

A condition is one of

- ``{param: name}`` (the param is truthy) or ``{param: name, <comparison>: operand}``;
- ``{metric: step.name, <comparison>: operand}``: a metric recorded by this run;
- ``{check: step.name}`` / ``{check: step.name, passed: false}``: a check's outcome in this run;
- ``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``.

Comparisons: ``equals``, ``above``, ``below``, ``at_least``, ``at_most``. An operand is a
literal, ``{param: name}``, or (metrics only) ``{recorded: champion}``: the same metric's value
on the latest earlier date on which this step's `when:` held (the current champion).
Nothing here is evaluated as Python or pasted into SQL.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool
COMPARISONS = ("equals", "above", "below", "at_least", "at_most")
REFERENCE = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"
Reference = Annotated[str, Field(pattern=REFERENCE, description="`step.name`: a metric or check of a step.")]
ParamName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=63)]
# the forms, as a message names them (a condition given as text or a number)
FORMS = (
    "`{param: name}` (the param is true), `{param: name, equals: value}`, `{metric: step.name, above: 0.9}`, "
    "`{check: step.name, passed: false}`, `{all: [...]}`, `{any: [...]}` or `{not: {...}}`"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class ParamOperand(_Model):
    """The value of a param of this run."""

    param: ParamName


class RecordedOperand(_Model):
    """The metric's value recorded on the latest earlier date on which this step's `when:` held."""

    recorded: Literal["champion"]


Operand = Scalar | ParamOperand | RecordedOperand
NumberOperand = int | float | ParamOperand | RecordedOperand


class Condition(_Model):
    """Run the step only if this holds; otherwise it (and what needs it) is skipped."""

    param: ParamName | None = None
    metric: Reference | None = None
    check: Reference | None = None
    all: Annotated[list[Condition], Field(min_length=1)] | None = None
    any: Annotated[list[Condition], Field(min_length=1)] | None = None
    not_: Condition | None = Field(None, alias="not")
    equals: Operand | None = None
    above: NumberOperand | None = None
    below: NumberOperand | None = None
    at_least: NumberOperand | None = None
    at_most: NumberOperand | None = None
    passed: bool | None = None

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        kinds = [k for k in ("param", "metric", "check", "all", "any", "not_") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = " and ".join(f"`{k.rstrip('_')}`" for k in kinds) or "none"
            raise ValueError(f"a condition needs exactly one of param, metric, check, all, any, not; found {found}")
        kind = kinds[0]
        compared = [c for c in COMPARISONS if getattr(self, c) is not None]
        if len(compared) > 1:
            raise ValueError(f"a condition compares once; found {' and '.join(f'`{c}`' for c in compared)}")
        if kind in ("all", "any", "not_") and (compared or self.passed is not None):
            raise ValueError(f"`{kind.rstrip('_')}` takes conditions only, no comparison")
        if kind == "check" and compared:
            raise ValueError("a `check` condition takes `passed: true|false`, no comparison")
        if kind != "check" and self.passed is not None:
            raise ValueError("`passed` goes with `check:` only")
        if kind == "metric" and not compared:
            raise ValueError(f"a `metric` condition needs one of {', '.join(COMPARISONS)}")
        if kind == "param" and any(isinstance(getattr(self, c), RecordedOperand) for c in compared):
            raise ValueError(
                "`{recorded: champion}` compares a metric with its champion's value; use it with `metric:`"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("param", "metric", "check", "all", "any", "not_") if getattr(self, k) is not None)

    @property
    def comparison(self) -> tuple[str, Any] | None:
        return next(((c, getattr(self, c)) for c in COMPARISONS if getattr(self, c) is not None), None)

    def walk(self, path: tuple = ()):
        """Every condition in the tree with its path below `when:` (for located errors)."""
        yield path, self
        for key in ("all", "any"):
            for i, term in enumerate(getattr(self, key) or []):
                yield from term.walk((*path, key, i))
        if self.not_ is not None:
            yield from self.not_.walk((*path, "not"))


def referenced_steps(condition: Condition) -> set[str]:
    """The steps whose metrics or checks the condition reads (they run before the condition)."""
    return {ref.split(".")[0] for _, c in condition.walk() for ref in (c.metric, c.check) if ref}


def condition_problems(pipeline, name: str, condition: Condition) -> list[tuple[tuple, str]]:
    """(path, message) for references that name no param, metric or check, located under the
    step's `when:`."""
    problems: list[tuple[tuple, str]] = []
    base = ("steps", name, "when")
    params = list(pipeline.params)

    def param_problem(path: tuple, param: str) -> None:
        if param not in pipeline.params:
            close = difflib.get_close_matches(param, params, n=1)
            hint = (
                f"; did you mean `{close[0]}`?"
                if close
                else (f"; params are: {', '.join(params)}" if params else "; declare it under `params:`")
            )
            problems.append(((*base, *path), f"`{param}` is not a param of this pipeline{hint}"))

    for path, c in condition.walk():
        if c.param is not None:
            param_problem((*path, "param"), c.param)
        comparison = c.comparison
        if comparison and isinstance(comparison[1], ParamOperand):
            param_problem((*path, comparison[0], "param"), comparison[1].param)
        for key in ("metric", "check"):
            ref = getattr(c, key)
            if ref is None:
                continue
            step_name, item = ref.split(".")
            where = (*base, *path, key)
            step = pipeline.steps.get(step_name)
            if step is None:
                close = difflib.get_close_matches(step_name, list(pipeline.steps), n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                problems.append((where, f"`{step_name}` is not a step of this pipeline{hint}"))
                continue
            if step_name == name:
                problems.append((where, f"step `{name}`'s `when:` cannot read its own {key}s: they run after it"))
                continue
            if getattr(step, "foreach", None) is not None:
                problems.append(
                    (
                        where,
                        f"step `{step_name}` runs per item (`foreach:`): its {key}s are one per item, not one "
                        f"value; read them in a step without `foreach:` that takes `{step_name}` as an input",
                    )
                )
                continue
            names = [m.name for m in (step.metrics if key == "metric" else step.checks)]
            if item not in names:
                close = difflib.get_close_matches(item, names, n=1)
                hint = (
                    f"; did you mean `{step_name}.{close[0]}`?"
                    if close
                    else (f"; its {key}s are: {', '.join(names)}" if names else f"; it has no {key}s")
                )
                problems.append((where, f"step `{step_name}` has no {key} `{item}`{hint}"))
    return problems
