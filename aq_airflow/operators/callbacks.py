"""A DAG failure callback named by ``module:callable`` in the spec."""

from __future__ import annotations

import importlib
from typing import Any


class ImportedCallback:
    """Imports ``module:callable`` when a failure happens, not when the DAG is parsed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, context: Any) -> Any:
        module, _, name = self.path.partition(":")
        target: Any = importlib.import_module(module)
        for part in name.split("."):
            target = getattr(target, part)
        return target(context)

    def __repr__(self) -> str:
        return f"ImportedCallback({self.path!r})"
