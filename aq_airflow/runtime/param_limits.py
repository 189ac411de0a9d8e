"""How deeply nested and how large a run's param may be: one rule for a spec's ``params:``
defaults (``validate``), ``aq-airflow run --param`` and a triggered run's conf (the operators
that read params, and a python step's context).

Why there are limits at all:

- Depth. Python's JSON reader raises ``RecursionError`` near 1,000 levels, and Airflow hands
  each task its params through its execution API, whose serializer stops at about 255 levels:
  a conf nested that deep fails every task of the run, those that never read it too, before any
  of aq-airflow's code runs. 64 levels is what a spec itself may nest (``pipeline_spec.yamlpos``).
- Size. A python step gets every param in one environment variable (``AQ_CONTEXT``), and Linux
  refuses to start a process with an environment string over 128 KiB (``E2BIG``, "Argument list
  too long"): one large param stopped every python step of the run. A param is a setting, not
  data: at most 64 KiB as JSON, and a run's params together at most 96 KiB.

The depth is measured without recursion and the size without serializing more than the limit, so
a hostile value costs no more than the walk to the first level or byte past its limit.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # levels of lists and mappings in one param: `[[1]]` is 2
MAX_BYTES = 64 * 1024  # one param, as compact JSON in UTF-8
MAX_TOTAL_BYTES = 96 * 1024  # a run's params together: AQ_CONTEXT stays under Linux's 128 KiB
TOO_DEEP = f"nested more than {MAX_DEPTH} lists or mappings deep, the limit for a param"
FIX = "put large or deeply nested data in a file or table a step reads, and pass its path or name as the param"


def measure(value: Any, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> tuple[int, int]:
    """(depth, bytes) of ``value`` as compact JSON, walking only until it passes a limit: then
    the depth is ``max_depth + 1`` or the bytes are above ``max_bytes`` (not the whole measure)."""
    depth, size = 0, 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list | tuple):
            level += 1
            if level > max_depth:
                return level, size
            depth = max(depth, level)
            size += 2 + max(len(node) - 1, 0)  # brackets and commas
            if size > max_bytes:  # so many entries that their commas alone are past the limit
                return depth, size
            if isinstance(node, dict):
                size += len(node)  # colons
                stack += [(str(key), level) for key in node]
                stack += [(item, level) for item in node.values()]
            else:
                stack += [(item, level) for item in node]
        elif isinstance(node, str):
            if len(node) > max_bytes:  # each character is at least one byte
                return depth, len(node) + size
            size += len(json.dumps(node, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        else:
            size += len(json.dumps(node, default=str))
        if size > max_bytes:
            return depth, size
    return depth, size


def past_limit(value: Any) -> str | None:
    """Which limit ``value`` is past, in words ("nested more than 64 levels deep ..."), or None."""
    depth, size = measure(value)
    if depth > MAX_DEPTH:
        return TOO_DEEP
    if size > MAX_BYTES:
        return f"more than {MAX_BYTES:,} bytes as JSON, the limit for a param"
    return None


def param_problem(name: str, value: Any) -> str | None:
    """Why param ``name`` is past a limit (naming the limit and the fix), or None."""
    limit = past_limit(value)
    return f"param `{name}` is {limit}; {FIX}" if limit else None


def params_problems(params: dict) -> dict[str, str]:
    """{param: why} for each param of a run past a limit; then, when the others together are
    more than :data:`MAX_TOTAL_BYTES`, the largest of them until the rest fit."""
    problems = {name: why for name, value in params.items() if (why := param_problem(str(name), value))}
    sizes = {name: measure(value)[1] for name, value in params.items() if name not in problems}
    total = sum(sizes.values())
    for name in sorted(sizes, key=lambda n: -sizes[n]):
        if total <= MAX_TOTAL_BYTES:
            break
        problems[name] = (
            f"param `{name}` ({sizes[name]:,} bytes as JSON) takes the run's params past {MAX_TOTAL_BYTES:,} "
            f"bytes together, the limit for a run's params; {FIX}"
        )
        total -= sizes[name]
    return problems


def text_depth_beyond(text: str, max_depth: int = MAX_DEPTH) -> bool:
    """Whether JSON ``text`` opens more than ``max_depth`` lists or objects at once (brackets in
    strings do not count): checked before parsing, which would recurse once per level."""
    level, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            if level > max_depth:
                return True
        elif char in "]}":
            level -= 1
    return False
