"""`Source`: data read from YAML, where each of its values is written, and what was already reported.

A `Source` is immutable: selecting a sub-tree (`--key`) or applying an override
(`--set`) returns a new one. It is also the locator that turns a problem at a
YAML path into a `Problem` with `file:line:col` (or the override that wrote it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from fastmoe_cfg.config.errors import ConfigError, Path, Problem, describe, did_you_mean, format_path

__all__ = ["Located", "Position", "Source"]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class Located:
    """Where a path is written: its key (None for the root and list items) and its value."""

    key: Position | None
    value: Position
    file: str | None = None  # the file that wrote it, when not the source's own (a parent through `extends`)


@dataclass(frozen=True)
class Source:
    """Data read from YAML with the position of every node; the locator of its problems.

    `prefix` is the `--key` path of `data` inside the document; `overrides` maps a
    path to the `key=value` text of the `--set` that wrote it and its position on the
    command line; `reported` holds the paths whose values were already reported while
    reading (their validation errors would say the same thing twice); `version` is the
    `format_version` of the nearest mapping above `data` that has one (a stack's, for
    `--key mlp`): a selection without its own is read in that version, not as version 1.
    """

    data: Any
    file: str | None = None
    positions: Mapping[Path, Located] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    prefix: Path = ()
    overrides: Mapping[Path, tuple[str, int]] = field(default_factory=dict)
    reported: frozenset[Path] = frozenset()
    version: int | None = None

    # ------------------------------------------------------------------ locating
    def problem(self, path: Path, kind: str, **fields: Any) -> Problem:
        """A problem at `path` (relative to `data`); `kind` is key, value or missing."""
        for length in range(len(path), -1, -1):
            if path[:length] in self.overrides:
                override, order = self.overrides[path[:length]]
                return Problem(path=format_path(self.prefix + path), file=self.file, override=override, order=order, **fields)
        position, file = self._position(path, kind)
        line, column = (position.line, position.column) if position else (None, None)
        return Problem(path=format_path(self.prefix + path), file=file, line=line, column=column, **fields)

    def written_at(self, path: Path) -> tuple[str | None, Position] | None:
        """(file, position of the key, else of the value) where `path` is written; None when it is not."""
        located = self.positions.get(path)
        if located is None:
            return None
        return located.file or self.file, located.key or located.value

    def origin(self, path: Path) -> str | None:
        """"override" when a `--set` wrote the path, "file" when the file did, None otherwise."""
        if any(path[:length] in self.overrides for length in range(len(path), 0, -1)):
            return "override"
        return "file" if path in self.positions else None

    def is_reported(self, path: Path) -> bool:
        """Whether the value at `path` (relative to `data`), or one that contains it, was already reported."""
        return any(path[:length] in self.reported for length in range(len(path), -1, -1))

    def _position(self, path: Path, kind: str) -> tuple[Position | None, str | None]:
        located = self.positions.get(path)
        if located is not None:
            return (located.key if kind == "key" and located.key is not None else located.value), located.file or self.file
        # Not written (a missing or defaulted field): point at the nearest written parent.
        for length in range(len(path) - 1, -1, -1):
            located = self.positions.get(path[:length])
            if located is not None:
                return located.key or located.value, located.file or self.file
        return (Position(1, 1) if self.file is not None else None), self.file

    # ------------------------------------------------------------ new sources
    def with_problems(self, *problems: Problem) -> Source:
        return replace(self, problems=(*self.problems, *problems))

    def select(self, key: Path) -> Source:
        """The sub-tree at `key` (`--key model.mlp`), or a ConfigError naming what is missing."""
        node = self.data
        version = self.version
        for depth, part in enumerate(key):
            if isinstance(node, dict) and type(node.get("format_version")) is int:
                version = node["format_version"]
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
        return replace(
            self,
            data=node,
            positions={path[len(key) :]: located for path, located in self.positions.items() if path[: len(key)] == key},
            prefix=self.prefix + key,
            reported=frozenset(path[len(key) :] for path in self.reported if path[: len(key)] == key),
            version=version,
        )

    def with_override(self, text: str, order: int, path: Path, value: Any) -> Source:
        """`value` written at `path` by the override `text` (the `order`-th on the command line).

        Missing parent mappings are created; a parent that is not a mapping is a
        problem naming the override, and the data stays as it was.
        """
        shown = format_path(self.prefix + path)

        def refused(message: str) -> Source:
            return self.with_problems(Problem(message, shown, self.file, override=text, order=order))

        data = {} if self.data is None else copy.deepcopy(self.data)
        if not isinstance(data, dict):
            return refused(f"cannot set {shown}: the document is {describe(data)}, not a mapping")
        overrides = dict(self.overrides)
        node = data
        for depth, part in enumerate(path[:-1]):
            if node.get(part) is None:
                node[part] = {}
                overrides.setdefault(path[: depth + 1], (text, order))  # created by this override
            node = node[part]
            if not isinstance(node, dict):
                where = format_path(self.prefix + path[: depth + 1])
                return refused(f"cannot set {shown}: {where} is {describe(node)}, not a mapping")
        node[path[-1]] = value
        overrides[path] = (text, order)
        return replace(
            self,
            data=data,
            positions={written: located for written, located in self.positions.items() if written[: len(path)] != path},
            overrides=overrides,
            reported=frozenset(bad for bad in self.reported if bad[: len(path)] != path),
        )
