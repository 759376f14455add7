"""YAML in and out, keeping the line and column of every key and value.

Loading: ruamel.yaml composes the text into a node graph (round-trip parser,
YAML 1.2), which becomes plain JSON data (dict, list, str, int, float, bool,
None) plus a side table `path -> (key position, value position)`. Merge keys
and aliases are resolved; duplicate keys, tags outside the YAML core schema
(`!!python/...`, `!custom`), dates and binary values are located problems;
nesting depth and expanded size are bounded. Problems are collected, not
raised one at a time.

Dumping: `dump_yaml` writes plain data; `edit_yaml` changes values inside an
existing text and keeps its comments and layout.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Iterator, Mapping

from fastmoe_cfg.config.errors import ConfigError, Path, Problem, did_you_mean, format_path, shorten

MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_BYTES = 256 * 1024  # a config is a few kilobytes; the pure-Python parser reads ~100 kB/s

_CORE = "tag:yaml.org,2002:"
_MERGE = _CORE + "merge"
_NON_JSON = {
    "timestamp": "dates and timestamps are not supported here; quote the value to make it a string",
    "binary": "binary values are not supported here",
}


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class Located:
    """Where a path is written: its key (None for the root and list items) and its value."""

    key: Position | None
    value: Position


@dataclass
class Source:
    """Data read from YAML, with the positions of its nodes; also the `Locator` for its problems."""

    data: Any
    file: str | None = None
    positions: dict[Path, Located] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    prefix: Path = ()  # the `--key` path of `data` inside the document
    # path -> (`key=value` text of the `--set` that wrote it, its position on the command line)
    overrides: dict[Path, tuple[str, int]] = field(default_factory=dict)
    bad_paths: set[Path] = field(default_factory=set)  # values already reported while reading

    def problem(self, path: Path, kind: str, **fields: Any) -> Problem:
        """A problem at `path` (relative to `data`); `kind` is key, value or missing."""
        for length in range(len(path), -1, -1):
            if path[:length] in self.overrides:
                override, order = self.overrides[path[:length]]
                shown = format_path(self.prefix + path)
                return Problem(path=shown, file=self.file, override=override, order=order, **fields)
        position = self._position(path, kind)
        line, column = (position.line, position.column) if position else (None, None)
        return Problem(path=format_path(self.prefix + path), file=self.file, line=line, column=column, **fields)

    def origin(self, path: Path) -> str | None:
        if any(path[:length] in self.overrides for length in range(len(path), 0, -1)):
            return "override"
        return "file" if path in self.positions else None

    def _position(self, path: Path, kind: str) -> Position | None:
        located = self.positions.get(path)
        if located is not None:
            return located.key if kind == "key" and located.key is not None else located.value
        # Not written (a missing or defaulted field): point at the nearest written parent.
        for length in range(len(path) - 1, -1, -1):
            located = self.positions.get(path[:length])
            if located is not None:
                return located.key or located.value
        return Position(1, 1) if self.file is not None else None

    def select(self, key: Path) -> Source:
        """The sub-tree at `key` (`--key model.mlp`), or a ConfigError naming what is missing."""
        node = self.data
        for depth, part in enumerate(key):
            if not isinstance(node, dict) or part not in node:
                where = key[:depth]
                if isinstance(node, dict):
                    message = f"no key {part!r} (selected with --key {format_path(key)})"
                    problem = self.problem(where, "key", message=message, suggestion=did_you_mean(part, node))
                else:
                    message = f"expected a mapping holding {part!r} (selected with --key {format_path(key)})"
                    problem = self.problem(where, "value", message=message)
                raise ConfigError([*self.problems, problem])
            node = node[part]
        positions = {path[len(key) :]: located for path, located in self.positions.items() if path[: len(key)] == key}
        bad_paths = {path[len(key) :] for path in self.bad_paths if path[: len(key)] == key}
        return Source(node, self.file, positions, list(self.problems), self.prefix + key, dict(self.overrides), bad_paths)


def read_yaml(path: str | FilePath, *, display_name: str | None = None) -> Source:
    """Read and parse a YAML file; bad content is a located problem, never an exception.

    Raises OSError when the file cannot be read, and for anything that is not a
    regular file (a directory, a device such as /dev/zero, a FIFO).
    """
    name = display_name or str(path)
    with open(path, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        raw = stream.read(MAX_BYTES + 1)
    return parse_yaml_bytes(raw, name)


def parse_yaml_bytes(raw: bytes, file: str | None) -> Source:
    if len(raw) > MAX_BYTES:
        return Source(None, file, problems=[Problem(f"file larger than {MAX_BYTES:,} bytes: not a config", file=file, line=1, column=1)])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = Problem(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", file=file, line=line, column=column)
        return Source(None, file, problems=[problem])
    return parse_yaml(text, file)


def parse_yaml(text: str, file: str | None = None) -> Source:
    """Parse YAML text into plain data with positions; problems are in `Source.problems`."""
    import warnings

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)  # composing only: nodes keep their marks; no comments needed
    yaml.max_depth = MAX_DEPTH  # ruamel composes recursively: bound it before Python's stack
    source = Source(None, file)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a reused anchor is legal YAML: the later one wins
            node = yaml.compose(text)
    except Exception as exc:  # ruamel's errors carry a mark; anything else still gets a location
        source.problems.append(_syntax_problem(exc, text, file))
        return source
    if node is None:
        return source
    builder = _Builder(source)
    try:
        source.data = builder.convert(node, ())
    except _TooLarge as exc:
        source.data = None
        source.problems.append(exc.problem)
    return source


def _syntax_problem(exc: Exception, text: str, file: str | None) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    elif isinstance(getattr(exc, "position", None), int):  # ReaderError: a character offset
        position = exc.position  # type: ignore[attr-defined]
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
    else:
        line, column = 1, 1
    if type(exc).__name__ == "MaxDepthExceededError" or isinstance(exc, RecursionError):
        return Problem(f"nesting deeper than {MAX_DEPTH} levels", file=file, line=line, column=column)
    detail = " ".join(str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part)
    if not detail:
        detail = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Problem(f"invalid YAML: {detail}", file=file, line=line, column=column)


class _TooLarge(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


def _tag(node: Any) -> str:
    tag = getattr(node.tag, "value", node.tag)
    return str(tag) if tag is not None else ""


def _position(node: Any) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _value_position(node: Any, key_node: Any) -> Position:
    """Where a value is written; an empty value (`experts:`) is placed just after its key's colon."""
    empty = getattr(node, "value", None) == "" and getattr(node, "style", None) is None
    if empty and key_node is not None:
        return Position(key_node.end_mark.line + 1, key_node.end_mark.column + 2)
    return _position(node)


class _Builder:
    """Node graph -> plain data, recording positions and problems."""

    def __init__(self, source: Source):
        self.source = source
        self.nodes = 0

    def _problem(self, node: Any, message: str, path: Path | None = None, *, bad_value: bool = True) -> None:
        if path is not None and bad_value:
            self.source.bad_paths.add(path)
        position = _position(node)
        shown = format_path(path) if path is not None else ""
        self.source.problems.append(Problem(message, shown, self.source.file, position.line, position.column))

    def convert(self, node: Any, path: Path, key_node: Any = None, depth: int = 0) -> Any:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            position = _position(node)
            what = f"more than {MAX_NODES} values after expanding aliases" if depth <= MAX_DEPTH else "nesting too deep"
            raise _TooLarge(Problem(f"document too large: {what}", file=self.source.file, line=position.line, column=position.column))
        key_position = _position(key_node) if key_node is not None else None
        self.source.positions.setdefault(path, Located(key_position, _value_position(node, key_node)))
        tag = _tag(node)
        if isinstance(node, MappingNode):
            if tag != _CORE + "map":
                self._bad_tag(node, tag, path)
            result: dict[str, Any] = {}
            for key_node, value_node in self._pairs(node, path, depth):
                key = self._key(key_node, path)
                if key is None:
                    continue
                result[key] = self.convert(value_node, (*path, key), key_node, depth + 1)
            return result
        if isinstance(node, SequenceNode):
            if tag != _CORE + "seq":
                self._bad_tag(node, tag, path)
            return [self.convert(item, (*path, index), None, depth + 1) for index, item in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            return self._scalar(node, tag, path)
        return None

    def _pairs(self, node: Any, path: Path, depth: int) -> Iterator[tuple[Any, Any]]:
        """Explicit pairs (duplicates reported), then merged ones (`<<`) for keys not already present."""
        from ruamel.yaml.nodes import MappingNode, SequenceNode

        seen: dict[Any, Any] = {}
        merges = []
        for key_node, value_node in node.value:
            if _tag(key_node) == _MERGE:
                merges.append(value_node)
                continue
            key = getattr(key_node, "value", None)
            if isinstance(key, str) and key in seen:
                first = _position(seen[key])
                message = f"duplicate key (first defined at line {first.line})"
                self._problem(key_node, message, (*path, key), bad_value=False)
                continue
            if isinstance(key, str):
                seen[key] = key_node
            yield key_node, value_node
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self._problem(source, "a merge key (<<) takes a mapping or a list of mappings", path, bad_value=False)
                    continue
                if depth > MAX_DEPTH:
                    raise _TooLarge(Problem("merge keys nested too deep", file=self.source.file, line=_position(source).line, column=_position(source).column))
                for key_node, value_node in self._pairs(source, path, depth + 1):
                    self.nodes += 1
                    if self.nodes > MAX_NODES:
                        position = _position(key_node)
                        raise _TooLarge(Problem(f"document too large: more than {MAX_NODES} values after expanding aliases", file=self.source.file, line=position.line, column=position.column))
                    key = getattr(key_node, "value", None)
                    if isinstance(key, str) and key not in seen:
                        seen[key] = key_node
                        yield key_node, value_node

    def _key(self, node: Any, path: Path) -> str | None:
        from ruamel.yaml.nodes import ScalarNode

        if not isinstance(node, ScalarNode):
            self._problem(node, "keys must be plain strings, not a mapping or a list", path, bad_value=False)
            return None
        if _tag(node) not in (_CORE + "str", _CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"):
            self._bad_tag(node, _tag(node), path)
            return None
        return str(node.value)

    def _bad_tag(self, node: Any, tag: str, path: Path | None = None) -> None:
        shown = "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag
        message = f"tag {shown} is not allowed (only the YAML core schema: strings, numbers, booleans, null, mappings, lists)"
        self._problem(node, message, path)

    def _scalar(self, node: Any, tag: str, path: Path) -> Any:
        value: str = node.value
        kind = tag[len(_CORE) :] if tag.startswith(_CORE) else None
        if kind == "str":
            return value
        if kind == "null":
            return None
        if kind in _PARSERS:
            parse, expected = _PARSERS[kind]
            parsed = parse(value)
            if parsed is None:
                self._problem(node, f"{shorten(repr(value))} is not {expected}", path)
                return value
            return parsed
        if kind in _NON_JSON:
            self._problem(node, f"{_NON_JSON[kind]} (got {shorten(repr(value))})", path)
            return value
        self._bad_tag(node, tag, path)
        return value


def _parse_bool(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.lower())


def _parse_int(text: str) -> int | None:
    """A YAML 1.2 core integer (decimal, 0x, 0o; 0b and `_` separators too) that fits in 64 bits."""
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    digits = clean.lstrip("+-")
    if len(digits) > 70:  # longer than any 64-bit number in base 2, checked before converting
        return None
    try:
        value = None
        for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
            if digits.lower().startswith(prefix):
                value = sign * int(digits[2:], base)
                break
        if value is None:
            value = sign * int(digits, 10)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None


def _parse_float(text: str) -> float | None:
    clean = text.replace("_", "").lower()
    special = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}
    if clean in special:
        return special[clean]
    try:
        return float(clean)
    except ValueError:
        return None


_PARSERS: dict[str, tuple[Any, str]] = {
    "bool": (_parse_bool, "a boolean"),
    "int": (_parse_int, "a 64-bit integer"),
    "float": (_parse_float, "a number"),
}


def dump_yaml(data: Mapping[str, Any], *, header: str | None = None, comments: Mapping[str, str] | None = None) -> str:
    """Plain data -> YAML text (block style, keys in the given order).

    `header` becomes the comment lines above the document; `comments` an end-of-line comment on
    top-level keys, aligned in one column (at most 40), one line per value however long.
    """
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    document = _to_commented(data)
    if comments:
        yaml.width = 4096
        column = min(40, 2 + max(len(key) + 1 if isinstance(value, Mapping) else len(f"{key}: {value}") for key, value in data.items()))
        for key, comment in comments.items():
            document.yaml_add_eol_comment(comment, key, column=column)
    if header:
        document.yaml_set_start_comment(header)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def _to_commented(value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap

    if isinstance(value, Mapping):
        return CommentedMap((key, _to_commented(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_to_commented(item) for item in value]
    return value


def edit_yaml(text: str, updates: Mapping[Path, Any]) -> str:
    """Set values at paths inside YAML text, keeping its comments and layout.

    Missing parent mappings are created. `updates` maps a path tuple to plain data.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    document = yaml.load(text)
    if document is None:
        document = CommentedMap()
    for path, value in updates.items():
        node = document
        for part in path[:-1]:
            if not isinstance(node.get(part), Mapping):
                node[part] = CommentedMap()
            node = node[part]
        node[path[-1]] = _to_commented(value)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()
