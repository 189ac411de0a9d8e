"""YAML reading with the C loader, and source positions found only when an error needs them.

The fast path (every parse of a good spec) is ``yaml.load`` with libyaml's ``CSafeLoader``.
Only when validation fails is the file composed again into a node tree, so that an error's
path (``steps.train.resources.gpu``) can be turned into a line and column.
"""

from __future__ import annotations

from typing import Any

import yaml

try:  # libyaml is part of every PyYAML wheel; the pure loader is a fallback for odd builds
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader  # type: ignore[assignment]


class _StrictLoader(SafeLoader):  # type: ignore[misc,valid-type]
    """Safe loader that keeps dates as text (the spec model parses them) and rejects
    duplicate keys, which plain YAML silently resolves to the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key `{key.value}`: remove one of them", key.start_mark
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


def _no_timestamps(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _no_timestamps)


def load_yaml(text: str) -> Any:
    """Parse YAML text with the C loader; raises ``yaml.YAMLError`` with a mark on bad syntax."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def compose(text: str) -> yaml.Node | None:
    """The node tree of the text, for positions only."""
    return yaml.compose(text, Loader=SafeLoader)


def locate(root: yaml.Node | None, path: tuple, *, want_key: bool = False) -> tuple[int, int]:
    """1-based (line, col) of the node at ``path``; the closest existing parent if it is absent.

    Path elements that name no key (pydantic adds union tags such as ``list[str]``) are skipped.
    With ``want_key`` the position of the last element's key is returned, which is where an
    unknown or misspelt key should be reported.
    """
    node = root
    key_node = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(
                ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                None,
            )
            if match is None:
                continue
            key_node, node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            key_node, node = None, node.value[part]
    if node is None:
        return 1, 1
    mark = (key_node if want_key and key_node is not None else node).start_mark
    return mark.line + 1, mark.column + 1
