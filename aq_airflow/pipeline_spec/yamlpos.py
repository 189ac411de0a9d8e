"""YAML reading with the C loader, bounded, and source positions found only when an error needs
them.

Every parse of a good spec composes the node graph with libyaml's ``CSafeLoader``, checks it
against the limits below (a few microseconds a node) and only then constructs Python objects.
Only when validation fails is the file composed again into a node tree, so that an error's path
(``steps.train.resources.gpu``) can be turned into a line and column.

The limits keep a hostile or broken file from costing the dag-processor (which parses every
spec every 30 seconds, in every shard) more than a bounded amount of memory and time: a YAML
alias names a node already built, so a few lines of aliases nested in aliases ("billion
laughs") describe a document of billions of nodes. Each later stage that walks the data
(pydantic, the plan, JSON, generated Python) would expand it, so the *expanded* size is counted
on the node graph, where every alias is one shared node, before anything is constructed.
"""

from __future__ import annotations

from typing import Any

import yaml

try:  # libyaml is part of every PyYAML wheel; the pure loader is a fallback for odd builds
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader  # type: ignore[assignment]

# A spec is a few kilobytes; the largest real ones (hundreds of steps) stay under 200 KiB.
MAX_SPEC_BYTES = 1024 * 1024
# Nodes of the document with every alias expanded (a 1,000-step spec has about 40,000).
MAX_NODES = 200_000
# Mappings and lists inside one another (a spec's own structure needs 6; `params:` a few more).
MAX_DEPTH = 64


class YAMLSpecError(yaml.MarkedYAMLError):
    """Well-formed YAML a spec cannot hold; ``problem`` says why and how to fix it,
    ``problem_mark`` where."""


class YAMLLimitError(YAMLSpecError):
    """The document is beyond one of the limits (at the alias or node that crossed it)."""


class YAMLTypeError(YAMLSpecError):
    """A value JSON has no form for (a set, bytes, ordered pairs) or a mapping key that is not
    text: a spec's values go into JSON (the plan cache, Airflow's serialized DAG, params), where
    they would change or fail."""


class YAMLCharacterError(yaml.MarkedYAMLError):
    """A character YAML does not allow (a control character), with its position."""


def _character_error(text: str, byte_offset: int, character: int | str) -> YAMLCharacterError:
    """libyaml reports a bad character by its offset in the UTF-8 encoding of the text."""
    before = text.encode("utf-8", "surrogatepass")[:byte_offset].decode("utf-8", "replace")
    line, col = before.count("\n"), len(before) - (before.rfind("\n") + 1)
    code = character if isinstance(character, int) else ord(character[:1] or "\0")
    return YAMLCharacterError(
        problem=f"character U+{code:04X} is not allowed in YAML; remove it, or write it escaped "
        f'(`"\\u{code:04X}"` in a double-quoted string)',
        problem_mark=yaml.Mark("<spec>", len(before), line, col, None, None),
    )


_BOOL, _STR = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:str"
# YAML 1.1's word booleans, which YAML 1.2 (and editors' schema checks) read as text; as a key
# they can only mean the word (a spec's keys are text), while `true` and `false` stay refused
_WORD_BOOLEANS = ("on", "off", "yes", "no")


class _StrictLoader(SafeLoader):  # type: ignore[misc,valid-type]
    """Safe loader that keeps dates as text (the spec model parses them) and rejects
    duplicate keys, which plain YAML silently resolves to the last value."""

    def construct_scalar(self, node: yaml.ScalarNode) -> Any:
        value = super().construct_scalar(node)
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a "\ud800" escape: half of a UTF-16 pair, no character
                raise YAMLTypeError(
                    problem="this text holds a lone surrogate (an escape such as `\\ud800`), which is no "
                    "character and which JSON and databases refuse; write the character itself",
                    problem_mark=node.start_mark,
                ) from None
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.tag == _BOOL and not key.style and key.value.lower() in _WORD_BOOLEANS:  # plain
                    key.tag = _STR  # a plain `on:` key is text, as YAML 1.2 reads it (`schema_change: {on: ...}`)
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key `{key.value}`: remove one of them", key.start_mark
                    )
                seen.add(key.value)
        mapping = super().construct_mapping(node, deep=deep)
        if not all(isinstance(key, str) for key in mapping):
            for key_node, _ in node.value:
                key = self.construct_object(key_node)
                if not isinstance(key, str):
                    raise YAMLTypeError(
                        problem=f"the key `{key_node.value}` is read as {type(key).__name__}, and keys are text in "
                        f"a spec (YAML reads true, false, numbers and null as other types): write it quoted, "
                        f"'{key_node.value}'",
                        problem_mark=key_node.start_mark,
                    )
        return mapping


def _no_timestamps(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)


def _not_json(what: str, instead: str):
    def refuse(loader: yaml.SafeLoader, node: yaml.Node):
        raise YAMLTypeError(
            problem=f"`{node.tag.replace('tag:yaml.org,2002:', '!!')}` makes {what}, which a spec cannot hold "
            f"(its values are text, numbers, booleans, null, lists and mappings); {instead}",
            problem_mark=node.start_mark,
        )

    return refuse


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _no_timestamps)
_StrictLoader.add_constructor("tag:yaml.org,2002:set", _not_json("a set", "write a list"))
_StrictLoader.add_constructor("tag:yaml.org,2002:binary", _not_json("bytes", "write text (base64 as a string)"))
_StrictLoader.add_constructor("tag:yaml.org,2002:omap", _not_json("ordered pairs", "write a mapping"))
_StrictLoader.add_constructor("tag:yaml.org,2002:pairs", _not_json("pairs", "write a mapping or a list"))


def _size_text(count: int) -> str:
    return f"{count:,}" if count < 10**12 else f"about 10^{len(str(count)) - 1}"


def _too_large(text: str) -> YAMLLimitError | None:
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_SPEC_BYTES else len(text)
    if size <= MAX_SPEC_BYTES:
        return None
    mark = yaml.Mark("<spec>", 0, 0, 0, None, None)
    return YAMLLimitError(
        problem=f"the file is {size:,} bytes, more than the limit of {MAX_SPEC_BYTES:,}; "
        "a spec describes a pipeline, not its data: move large values into a file the step reads, "
        "or split the pipeline",
        problem_mark=mark,
    )


def _within_limits(root: yaml.Node) -> bool:
    """Whether the document the node graph describes, aliases expanded, stays within
    :data:`MAX_NODES` and :data:`MAX_DEPTH` and has no alias inside the node it names.

    A document without aliases of lists or mappings is a tree: one pass counts it. Otherwise
    each node's expanded (size, height) is computed once (memoized by identity), so a graph of
    n nodes costs O(n) however large its expansion. Both walks are iterative (no recursion)."""
    collections: set[int] = set()
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, level = stack.pop()
        count += 1
        if count > MAX_NODES:
            return False
        if isinstance(node, yaml.ScalarNode):
            continue
        if level > MAX_DEPTH:
            return False
        if id(node) in collections:  # reached twice: an alias of a list or mapping
            return _expanded_within_limits(root)
        collections.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, level + 1))
                stack.append((value, level + 1))
        else:
            stack.extend((child, level + 1) for child in node.value)
    return True


def _expanded_within_limits(root: yaml.Node) -> bool:
    """:func:`_within_limits` for a graph with shared nodes, by memoized (size, height)."""
    sizes: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = (1, 0)  # a scalar: one value, no nesting
            continue
        children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value
        if children_done:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)][0] for child in children)
            height = 1 + max((sizes[id(child)][1] for child in children), default=0)
            if size > MAX_NODES or height > MAX_DEPTH:
                return False
            sizes[key] = (size, height)
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                return False  # an alias inside the node it names: an infinite document
            if id(child) not in sizes:
                stack.append((child, False))
    return True


def _limit_error(text: str) -> YAMLLimitError:
    """The first place, in document order, where the document crosses a limit: replays the
    events (the error path only), expanding each alias by its anchor's counted size. Past the
    first alias over :data:`MAX_NODES` it goes on counting, to say how large the document is."""
    # anchor -> (size, height) of its node, or its entry in `open_collections` while it is open
    anchors: dict[str, tuple[int, int] | list] = {}
    # per open collection: [anchor, size so far, tallest child]
    open_collections: list[list] = []
    total = 0
    crossed: tuple[yaml.Mark, str | None] | None = None  # where the size limit was first passed
    for event in yaml.parse(text, Loader=SafeLoader):
        depth = len(open_collections)
        if isinstance(event, yaml.AliasEvent):
            named = anchors.get(event.anchor, (1, 0))
            if isinstance(named, list):
                if crossed:
                    break
                return YAMLLimitError(
                    problem=f"the alias `*{event.anchor}` is inside the node `&{event.anchor}` it names, "
                    "which makes the document infinite; name a node outside it",
                    problem_mark=event.start_mark,
                )
            size, height = named
            if depth + height > MAX_DEPTH:
                if crossed:
                    break
                return _depth_error(event.start_mark, f"the alias `*{event.anchor}`")
            if total + size > MAX_NODES and not crossed:
                crossed = (event.start_mark, event.anchor)
        elif isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            collection = isinstance(event, yaml.CollectionStartEvent)
            size, height = 1, 0
            if collection and depth + 1 > MAX_DEPTH:
                if crossed:
                    break
                kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "list"
                return _depth_error(event.start_mark, f"this {kind}")
            if total + 1 > MAX_NODES and not crossed:
                crossed = (event.start_mark, None)
            if collection:
                total += 1
                entry = [event.anchor, 1, 0]
                open_collections.append(entry)
                if event.anchor:
                    anchors[event.anchor] = entry
                continue
            if event.anchor:
                anchors[event.anchor] = (1, 0)
        elif isinstance(event, yaml.CollectionEndEvent):
            entry = open_collections.pop()
            anchor, size, tallest = entry
            height = tallest + 1
            if anchor and anchors.get(anchor) is entry:
                anchors[anchor] = (size, height)
            if open_collections:
                parent = open_collections[-1]
                parent[1] += size
                parent[2] = max(parent[2], height)
            continue
        else:
            continue
        total += size
        if open_collections:
            parent = open_collections[-1]
            parent[1] += size
            parent[2] = max(parent[2], height)
    if crossed is None:  # not reached for a graph _within_limits rejects
        return YAMLLimitError(
            problem="the document is beyond the parser's limits", problem_mark=yaml.Mark("<spec>", 0, 0, 0, None, None)
        )
    mark, anchor = crossed
    if anchor is None:
        problem = (
            f"the document has more than {MAX_NODES:,} values; a spec describes a pipeline, not its data: "
            "move large values into a file the step reads, or split the pipeline"
        )
    else:
        problem = (
            f"with the alias `*{anchor}` the document passes the limit of {MAX_NODES:,} values "
            f"(with its aliases expanded it has {_size_text(total)}: aliases of nodes that hold aliases multiply, "
            'a "billion laughs"); write the values out, or keep large data out of the spec'
        )
    return YAMLLimitError(problem=problem, problem_mark=mark)


def _depth_error(mark: yaml.Mark, what: str) -> YAMLLimitError:
    return YAMLLimitError(
        problem=f"{what} is nested more than {MAX_DEPTH} levels deep (mappings and lists inside one "
        "another); flatten the structure",
        problem_mark=mark,
    )


def load_yaml_node(text: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text with the C loader within the limits: the data and its node graph (for
    positions). Raises ``yaml.YAMLError`` with a mark on bad syntax, :class:`YAMLLimitError`
    (a ``MarkedYAMLError``) beyond a limit, before any Python object is built."""
    too_large = _too_large(text)
    if too_large:
        raise too_large
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate: only text made in Python has one
        before = len(text[: error.start].encode("utf-8"))
        raise _character_error(text, before, text[error.start]) from None
    loader = _StrictLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.reader.ReaderError as error:
            raise _character_error(text, error.position, error.character) from None
        if node is None:
            return None, None
        if not _within_limits(node):
            raise _limit_error(text)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def compose(text: str) -> yaml.Node | None:
    """The node tree of the text, for positions only (aliases stay shared nodes: composing is
    linear in the text, whatever the aliases would expand to)."""
    if _too_large(text):
        return None
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
