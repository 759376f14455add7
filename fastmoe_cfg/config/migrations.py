"""Config format versions: each version's changes declared as data, applied when an older file is read.

A file without `format_version` is version 1. Reading a file of an older version
gives the current config plus one located warning per change that touches it;
`upgrade_text` rewrites the file in the current version, keeping its comments and
layout. The changes themselves (which fields, since which version, in words) are
declared by the schemas (`fastmoe_cfg.schemas.versions`) and listed in the docs.

Four kinds of change, each on one field of a config mapping (a "block"):

- `RenamedField`: the field's old name is moved to its new one.
- `RemovedWhen`: the field is dropped where it had no effect and is now an error.
- `DefaultChanged`: the field's default is not what it was; a file that leaves it unset is told.
- `MeaningChanged`: the field means something else; a file that sets it is told.

Generic machinery: nothing here knows about MoE.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Callable, Iterable

from fastmoe_cfg.config.errors import Path, Problem
from fastmoe_cfg.config.source import Source

__all__ = [
    "Change",
    "DefaultChanged",
    "MeaningChanged",
    "Migration",
    "RemovedWhen",
    "RenamedField",
    "Versions",
    "file_version",
    "migrate",
    "register_versions",
    "versions_of",
]

FORMAT_FIELD = "format_version"


def _always(data: dict[str, Any]) -> bool:
    return True


class Change:
    """One change of the format, made by `version`, to `field`; `summary` says it in words (docs, warnings).

    `when(data)` says whether the change touches a block's raw data (any values: check their types);
    `condition` says it in words for the docs. Plain classes, not dataclasses: these are declared at
    import time, on the path of every `validate`, where each dataclass costs about 3 ms to create.
    """

    kind = "change"
    _extra: dict[str, Any] = {}

    def __init__(
        self, *, version: int, field: str, summary: str, when: Callable[[dict[str, Any]], bool] = _always, condition: str = "", **extra: Any
    ):
        unknown = set(extra) - set(self._extra)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(unknown)}")
        self.version, self.field, self.summary, self.when, self.condition = version, field, summary, when, condition
        for name, default in self._extra.items():
            setattr(self, name, extra.get(name, default))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(version={self.version}, field={self.field!r})"

    def migrate(self, data: dict[str, Any]) -> tuple[dict[str, Any], Path, str] | None:
        """(new data, path blamed inside the block, warning) when the change touches `data`, else None."""
        raise NotImplementedError


class RenamedField(Change):
    kind = "renamed"
    _extra = {"old": ""}
    old: str

    def migrate(self, data: dict[str, Any]) -> tuple[dict[str, Any], Path, str] | None:
        if self.old not in data or self.field in data or not self.when(data):
            return None
        moved = {self.field if key == self.old else key: value for key, value in data.items()}
        return moved, (self.old,), f"renamed to {self.field} in version {self.version}: {self.summary}"


class RemovedWhen(Change):
    kind = "removed"

    def migrate(self, data: dict[str, Any]) -> tuple[dict[str, Any], Path, str] | None:
        if self.field not in data or not self.when(data):
            return None
        kept = {key: value for key, value in data.items() if key != self.field}
        return kept, (self.field,), f"removed (version {self.version}): {self.summary}"


class DefaultChanged(Change):
    kind = "default"
    _extra = {"blame": None}  # the field whose value makes the difference (routing), blamed when written
    blame: str | None

    def migrate(self, data: dict[str, Any]) -> tuple[dict[str, Any], Path, str] | None:
        if data.get(self.field) is not None or not self.when(data):
            return None
        blamed = (self.blame,) if self.blame and self.blame in data else ()
        return data, blamed, f"its default changed in version {self.version}: {self.summary}"


class MeaningChanged(Change):
    kind = "meaning"

    def migrate(self, data: dict[str, Any]) -> tuple[dict[str, Any], Path, str] | None:
        if self.field not in data or not self.when(data):
            return None
        return data, (self.field,), f"changed meaning in version {self.version}: {self.summary}"


class Versions:
    """The current version of a root class's files and every change since version 1.

    `blocks(data)` lists the paths of the config mappings the changes apply to (the root
    for an MLP file; `mlp` and `dense_mlp` for a stack).
    """

    def __init__(self, *, current: int, changes: tuple[Change, ...], blocks: Callable[[Any], Iterable[Path]] = lambda data: [()]):
        self.current, self.changes, self.blocks = current, changes, blocks


_VERSIONS: dict[type, Versions] = {}


def register_versions(root: type, versions: Versions) -> None:
    _VERSIONS[root] = versions


def versions_of(cls: type) -> Versions | None:
    return next((_VERSIONS[klass] for klass in cls.__mro__ if klass in _VERSIONS), None)


def file_version(data: Any, inherited: int | None = None) -> int | None:
    """The version a mapping is written in: its `format_version`, else `inherited` (the version of the mapping
    it was selected from), else 1; None when it is not an integer."""
    if not isinstance(data, dict):
        return None
    version = data.get(FORMAT_FIELD)
    if version is None:
        return inherited if inherited is not None else 1
    return version if type(version) is int else None


class Migration:
    """What reading an older file changed: the warnings, and the edits that `upgrade` writes.

    `applied` holds (block path, change, path in the block) per change applied, in order.
    """

    def __init__(self, warnings: tuple[Problem, ...] = (), applied: tuple[tuple[Path, Change, Path], ...] = (), version: int | None = None):
        self.warnings, self.applied, self.version = warnings, applied, version


def migrate(source: Source, versions: Versions | None) -> tuple[Source, Migration]:
    """`source` with every change since its version applied to its blocks, and the warnings they give."""
    version = file_version(source.data, source.version)
    if versions is None or version is None or not 1 <= version < versions.current:
        return source, Migration(version=version)
    data = copy.deepcopy(source.data)
    warnings: list[Problem] = []
    applied: list[tuple[Path, Change, Path]] = []
    positions = dict(source.positions)
    for block_path in versions.blocks(data):
        block = _at(data, block_path)
        if not isinstance(block, dict):
            continue
        for change in versions.changes:
            if change.version <= version:
                continue
            result = change.migrate(block)
            if result is None:
                continue
            new_block, blamed, message = result
            where = (*block_path, *blamed)
            warnings.append(replace(source.problem(where, "key", message=message), path=_shown(source, block_path, change)))
            applied.append((block_path, change, blamed))
            if isinstance(change, RenamedField):
                old, new = (*block_path, change.old), (*block_path, change.field)
                positions = {(new + path[len(old) :] if path[: len(old)] == old else path): located for path, located in positions.items()}
            block = _replace_at(data, block_path, new_block)
    warnings.sort(key=Problem.sort_key)
    return replace(source, data=data, positions=positions), Migration(tuple(warnings), tuple(applied), version)


def _shown(source: Source, block_path: Path, change: Change) -> str:
    from fastmoe_cfg.config.errors import format_path

    return format_path((*source.prefix, *block_path, change.field))


def _at(data: Any, path: Path) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _replace_at(data: dict[str, Any], path: Path, value: dict[str, Any]) -> dict[str, Any]:
    if value is _at(data, path):
        return value
    if not path:
        data.clear()
        data.update(value)
        return data
    parent = _at(data, path[:-1])
    parent[path[-1]] = value
    return value


def upgrade_text(text: str, migration: Migration, current: int, prefix: Path = (), extra: Iterable[Any] = ()) -> str:
    """The YAML text rewritten in version `current`: the migration's renames and removals, `extra` edits
    (`set`'s values), and `format_version: current` (after `type:` when it is new), keeping comments and layout."""
    from fastmoe_cfg.config.yaml_writer import Edit, edit_yaml_ops

    edits: list[Edit] = []
    for block_path, change, _ in migration.applied:
        block = (*prefix, *block_path)
        if isinstance(change, RenamedField):
            edits.append(Edit("rename", (*block, change.old), change.field))
        elif isinstance(change, RemovedWhen):
            edits.append(Edit("delete", (*block, change.field)))
    edits += list(extra)
    edits.append(Edit("set", (*prefix, FORMAT_FIELD), current, after="type"))
    return edit_yaml_ops(text, edits)
