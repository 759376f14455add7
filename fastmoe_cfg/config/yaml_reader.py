"""Reading YAML, keeping the line and column of every key and value.

ruamel.yaml composes the text into a node graph (round-trip parser,
YAML 1.2), which becomes plain JSON data (dict, list, str, int, float, bool,
None) plus a side table `path -> (key position, value position)`. Merge keys
and aliases are resolved; duplicate keys, tags outside the YAML core schema
(`!!python/...`, `!custom`), dates and binary values are located problems;
nesting depth and expanded size are bounded. Problems are collected, not
raised one at a time. Writing is `yaml_writer`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path as FilePath
from typing import Any, Iterator

from fastmoe_cfg.config.errors import Path, Problem, format_path, shorten
from fastmoe_cfg.config.source import Located, Position, Source

__all__ = ["MAX_BYTES", "parse_yaml", "parse_yaml_bytes", "read_json", "read_yaml"]

MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_BYTES = 256 * 1024  # a config is a few kilobytes; the pure-Python parser reads ~100 kB/s

_CORE = "tag:yaml.org,2002:"
_MERGE = _CORE + "merge"
_NON_JSON = {
    "timestamp": "dates and timestamps are not supported here; quote the value to make it a string",
    "binary": "binary values are not supported here",
}


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


def read_json(path: str | FilePath, *, display_name: str | None = None) -> Source:
    """Read a JSON file (a Hugging Face config.json) as Python's `json` reads it, with the positions of its values.

    Text that `json` refuses (trailing commas, comments, single quotes, ...) is one problem, at the line and column
    `json` reports; a YAML mapping with `type` or `format_version` and no `model_type` (one of our configs) is returned
    as read, for the caller to name it.
    Raises OSError as `read_yaml` does."""
    import json

    name = display_name or str(path)
    with open(path, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        raw = stream.read(MAX_BYTES + 1)
    source = parse_yaml_bytes(raw, name)  # JSON is YAML 1.2: the same reader gives every value's position
    if source.data is None and source.problems and not raw.strip():
        return source
    try:
        json.loads(raw)
    except (UnicodeDecodeError, RecursionError) as exc:
        return Source(None, name, problems=source.problems or (Problem(f"not valid JSON: {exc}", file=name, line=1, column=1),))
    except json.JSONDecodeError as exc:
        data = source.data
        if isinstance(data, dict) and not source.problems and "model_type" not in data and ("type" in data or "format_version" in data):
            return source  # one of our YAML configs: convert says so
        return Source(None, name, problems=(Problem(f"not valid JSON: {exc.msg}", file=name, line=exc.lineno, column=exc.colno),))
    return source


def parse_yaml_bytes(raw: bytes, file: str | None) -> Source:
    if len(raw) > MAX_BYTES:
        return Source(None, file, problems=(Problem(f"file larger than {MAX_BYTES:,} bytes: not a config", file=file, line=1, column=1),))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = Problem(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", file=file, line=line, column=column)
        return Source(None, file, problems=(problem,))
    return parse_yaml(text, file)


def parse_yaml(text: str, file: str | None = None) -> Source:
    """Parse YAML text into plain data with positions; problems are in `Source.problems`."""
    import warnings

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)  # composing only: nodes keep their marks; no comments needed
    yaml.max_depth = MAX_DEPTH  # ruamel composes recursively: bound it before Python's stack
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a reused anchor is legal YAML: the later one wins
            node = yaml.compose(text)
    except Exception as exc:  # ruamel's errors carry a mark; anything else still gets a location
        return Source(None, file, problems=(_syntax_problem(exc, text, file),))
    if node is None:
        return Source(None, file)
    builder = _Builder(file)
    try:
        data = builder.convert(node, ())
    except _TooLarge as exc:
        return Source(None, file, problems=(*builder.problems, exc.problem))
    return Source(data, file, builder.positions, tuple(builder.problems), reported=frozenset(builder.reported))


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
    if "mapping values are not allowed here" in detail:
        # The usual cause: a key indented under a key that already has a value, or an unquoted ': '.
        detail += (
            " (a `key: value` where a plain value was expected: check the indentation of this line against the"
            " lines above, or quote a value that contains ': ')"
        )
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

    def __init__(self, file: str | None):
        self.file = file
        self.positions: dict[Path, Located] = {}
        self.problems: list[Problem] = []
        self.reported: set[Path] = set()  # paths whose value is reported here: validation need not say it again
        self.nodes = 0

    def _problem(self, node: Any, message: str, path: Path | None = None, *, bad_value: bool = True) -> None:
        if path is not None and bad_value:
            self.reported.add(path)
        position = _position(node)
        shown = format_path(path) if path is not None else ""
        self.problems.append(Problem(message, shown, self.file, position.line, position.column))

    def convert(self, node: Any, path: Path, key_node: Any = None, depth: int = 0) -> Any:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            position = _position(node)
            what = f"more than {MAX_NODES} values after expanding aliases" if depth <= MAX_DEPTH else "nesting too deep"
            raise _TooLarge(Problem(f"document too large: {what}", file=self.file, line=position.line, column=position.column))
        key_position = _position(key_node) if key_node is not None else None
        self.positions.setdefault(path, Located(key_position, _value_position(node, key_node)))
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
                    raise _TooLarge(Problem("merge keys nested too deep", file=self.file, line=_position(source).line, column=_position(source).column))
                for key_node, value_node in self._pairs(source, path, depth + 1):
                    self.nodes += 1
                    if self.nodes > MAX_NODES:
                        position = _position(key_node)
                        raise _TooLarge(Problem(f"document too large: more than {MAX_NODES} values after expanding aliases", file=self.file, line=position.line, column=position.column))
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
