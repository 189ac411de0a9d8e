"""The Python packages a step's code imports from outside its code package, checked before the
code runs: a module the image lacks is named with the file and line that imports it, instead of
surfacing as a ``ModuleNotFoundError`` traceback from somewhere inside the user's code.

Static (``ast``): nothing of the user's is imported or run here. The walk starts at the step's
module (and the packages above it, which Python imports first) and follows every import that
resolves to a file of the package, transitively. Required are the imports that importing a
module always runs: at module level or in a class body, outside any condition. A top-level module
imported so from outside the package must be findable (``importlib.util.find_spec``: the
standard library and installed packages are). Not required, since a valid step may never run
them: imports in functions; under an ``if`` (but for the tests that say which Python runs the
code: ``TYPE_CHECKING``, ``sys.version_info``, ``sys.platform``, ``os.name``, whose branch this
Python takes is followed, e.g. ``import tomli`` only before 3.11); in a ``try:`` whose handlers
catch ``ImportError``, ``ModuleNotFoundError``, ``Exception`` or everything; in a ``with
contextlib.suppress(...)`` of those. Such an import that fails when it runs is named the same way
by the runtime (``runtime.step``). A file the parser cannot read (a syntax error, nesting too
deep for it) is not walked: importing it raises the user's own error.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from collections import deque
from dataclasses import dataclass

_GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


@dataclass(frozen=True, slots=True)
class MissingModule:
    """A top-level module the code imports that this Python cannot find, and where it is first
    imported (``path`` relative to the package folder, ``/``-separated)."""

    name: str
    path: str
    line: int


def _module_files(folder: str, dotted: str) -> list[str]:
    """The files importing ``dotted`` runs, inside ``folder``: each package's ``__init__.py`` on
    the way down, then the module's own file (none for a name the folder does not hold)."""
    files: list[str] = []
    current = folder
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        package = os.path.join(current, part)
        if os.path.isdir(package):
            init = os.path.join(package, "__init__.py")
            if os.path.isfile(init):
                files.append(init)
            current = package
            continue
        module = package + ".py"
        if index == len(parts) - 1 and os.path.isfile(module):
            files.append(module)
        break
    return files


def _in_package(folder: str, top: str) -> bool:
    return os.path.isdir(os.path.join(folder, top)) or os.path.isfile(os.path.join(folder, top + ".py"))


def _guarded(handlers: list[ast.ExceptHandler]) -> bool:
    """Whether a ``try:`` block's handlers catch a failed import."""
    for handler in handlers:
        if handler.type is None:
            return True
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any((n.id if isinstance(n, ast.Name) else getattr(n, "attr", None)) in _GUARDS for n in names):
            return True
    return False


def _suppresses_imports(node: ast.With) -> bool:
    """Whether a ``with`` statement is ``contextlib.suppress(...)`` of a failed import."""
    for item in node.items:
        call = item.context_expr
        if (
            isinstance(call, ast.Call)
            and (getattr(call.func, "attr", None) or getattr(call.func, "id", None)) == "suppress"
        ):
            names = [getattr(arg, "id", None) or getattr(arg, "attr", None) for arg in call.args]
            if any(name in _GUARDS for name in names):
                return True
    return False


def _required_imports(tree: ast.AST):
    """The import statements of ``tree`` that importing it always runs (see the module's doc)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue  # runs when called, if ever
        if isinstance(node, ast.If):
            taken = _condition(node.test)
            if taken is not None:  # `if sys.version_info < (3, 11):` here: only the branch this Python runs
                stack.extend(node.body if taken else node.orelse)
            continue  # any other condition: neither branch is sure to run
        if isinstance(node, ast.Try) and _guarded(node.handlers):
            stack.extend([*node.handlers, *node.orelse, *node.finalbody])
            continue
        if isinstance(node, ast.With) and _suppresses_imports(node):
            continue
        stack.extend(ast.iter_child_nodes(node))


def _condition(test: ast.expr) -> bool | None:
    """What an ``if`` test is on this Python, for the tests that say which Python runs the code
    (``TYPE_CHECKING``: false; comparisons of ``sys.version_info``, ``sys.platform``, ``os.name``
    with constants, and ``not``/``and``/``or`` of them); None for any other test (both branches
    count)."""
    try:
        for node in ast.walk(test):
            if isinstance(node, ast.Name | ast.Attribute) and _dotted(node) in _FACTS:
                continue
            if not isinstance(node, _PLAIN) and not (isinstance(node, ast.Name | ast.Attribute) and _under_fact(node)):
                return None
        value = eval(compile(ast.Expression(test), "<if>", "eval"), {"__builtins__": {}}, dict(_NAMESPACE))  # noqa: S307
    except Exception:  # a comparison this Python cannot make (an odd operand): both branches count
        return None
    return bool(value)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _under_fact(node: ast.expr) -> bool:
    """``sys`` of ``sys.version_info``: a part of a fact's name (checked as the whole)."""
    name = _dotted(node)
    return name is not None and any(fact.startswith(name + ".") for fact in _FACTS)


_FACTS = {
    "sys.version_info", "sys.platform", "os.name", "sys.version_info.major", "sys.version_info.minor",
    "TYPE_CHECKING", "typing.TYPE_CHECKING",
}  # fmt: skip
_PLAIN = (
    ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Constant, ast.Tuple, ast.Load, ast.Subscript, ast.Slice,
    ast.cmpop, ast.boolop, ast.unaryop,
)  # fmt: skip
_NAMESPACE = {
    "sys": type("sys", (), {"version_info": sys.version_info, "platform": sys.platform}),
    "os": type("os", (), {"name": os.name}),
    "typing": type("typing", (), {"TYPE_CHECKING": False}),
    "TYPE_CHECKING": False,
}


def _package_of(folder: str, path: str) -> str:
    """The dotted package a file's relative imports are relative to."""
    relative = os.path.relpath(path, folder).replace(os.sep, "/")
    return ".".join(relative.split("/")[:-1])  # a module's package; an `__init__.py`'s own


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The dotted names an import statement imports (for ``from m import a``: ``m`` and ``m.a``,
    which is a module when the package holds one of that name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = package.split(".") if package else []
        if node.level > len(base):  # beyond the top: Python's own ImportError says so
            return []
        base = base[: len(base) - node.level + 1] if node.level > 1 else base
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    if not module or module == "__future__":
        return []
    return [module, *(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")]


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(folder: str, module: str) -> list[MissingModule]:
    """The top-level modules imported, transitively from ``module`` within the package at
    ``folder``, that this Python cannot find, each with the first file and line importing it.
    Empty when ``module`` is not in the package (it comes from the image; nothing to walk)."""
    queue = deque(_module_files(folder, module))
    seen: set[str] = set(queue)
    missing: dict[str, MissingModule] = {}
    checked: dict[str, bool] = {}
    while queue:
        path = queue.popleft()
        try:
            with open(path, "rb") as handle:
                tree = ast.parse(handle.read(), filename=path)
        except (SyntaxError, ValueError, OSError, MemoryError, RecursionError):  # too deeply nested for the parser
            continue  # importing it says what is wrong, in the user's own words
        package = _package_of(folder, path)
        relative = os.path.relpath(path, folder).replace(os.sep, "/")
        for node in sorted(_required_imports(tree), key=lambda n: n.lineno):
            for name in _imported(node, package):
                top = name.split(".")[0]
                if _in_package(folder, top):
                    for found in _module_files(folder, name):
                        if found not in seen:
                            seen.add(found)
                            queue.append(found)
                    continue
                if isinstance(node, ast.ImportFrom) and name != (node.module or ""):
                    continue  # `from pkg import name`: pkg decides
                if top not in checked:
                    checked[top] = _findable(top)
                if not checked[top] and top not in missing:
                    missing[top] = MissingModule(top, relative, node.lineno)
    return list(missing.values())
