"""`extends:`: a config file that starts from others.

    extends: base.yaml                                   # one parent
    extends: [base.yaml, {file: model.yaml, key: model.mlp}]   # several, applied left to right

Paths are relative to the file that names them. The parents are applied left to right,
then the file's own values. Merge rules:

- mappings merge, key by key;
- scalars and lists replace;
- a mapping whose `type` changes replaces the parent's mapping instead of merging into it
  (a `pre_norm: {type: rms_norm}` over a parent's `layer_norm` does not inherit its fields);
- at the root, a parent of another `type` is an error.

Chains are at most 16 files deep. Every value keeps the file, line and column that wrote
it (`Located.file`), so an error points at the file that wrote the bad value and `explain`
and `diff` name it. Cycles, missing files, parents of another variant, bad entries and
too-deep chains are located problems at the `extends` entry.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable

from fastmoe_cfg.config.errors import Path, Problem, describe, did_you_mean
from fastmoe_cfg.config.source import Located, Source

__all__ = ["EXTENDS", "MAX_CHAIN", "EXTENDS_SCHEMA", "resolve_extends"]

EXTENDS = "extends"
MAX_CHAIN = 16
MAX_FILES = 256  # parents read for one config, all chains together (a diamond of 16 levels would be 65536 reads)

EXTENDS_SCHEMA: dict[str, Any] = {
    "description": (
        "Parent configs, applied left to right before this file's own values (root only): a path relative to this "
        "file, or {file, key} to take the mapping at a dotted key of the parent. Mappings merge; scalars and lists "
        "replace; a mapping whose type changes replaces the parent's."
    ),
    "x-tier": "core",
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/ExtendsEntry"}]}},
        {"$ref": "#/$defs/ExtendsEntry"},
    ],
}
EXTENDS_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "x-tier": "core", "description": "The parent file, relative to this file."},
        "key": {"type": "string", "x-tier": "core", "description": "Dotted key of the mapping to take from the parent (model.mlp)."},
    },
    "required": ["file"],
    "additionalProperties": False,
}

Reader = Callable[[str], Source]  # reads a file (its display name) into a Source; raises OSError
Prepare = Callable[[Source], Source]  # what to do to a parent's selected data before merging (migrations)


def resolve_extends(
    source: Source, read: Reader, prepare: Prepare = lambda source: source, chain: tuple[str, ...] = (), _reads: list[int] | None = None
) -> Source:
    """`source` with its parents merged under its own values; problems found on the way are added to it."""
    data = source.data
    if not isinstance(data, dict) or EXTENDS not in data:
        return source
    own = {key: value for key, value in data.items() if key != EXTENDS}
    own_positions = {path: located for path, located in source.positions.items() if path[:1] != (EXTENDS,)}
    chain = (*chain, source.file or "<text>")
    problems: list[Problem] = []
    merged: Any = None
    positions: dict[Path, Located] = {}
    reported: set[Path] = set()
    for index, entry_path, file, key in _entries(source, problems):
        where = source.problem(entry_path, "value", message="")
        parent_name = _relative(source.file, file)
        identities = [_identity(name) for name in chain]
        if _identity(parent_name) in identities:
            cycle = " -> ".join([*chain[identities.index(_identity(parent_name)) :], parent_name])
            problems.append(replace(where, message=f"extends {file}: a cycle ({cycle})"))
            continue
        if len(chain) >= MAX_CHAIN:
            problems.append(replace(where, message=f"extends {file}: chains of extends are at most {MAX_CHAIN} files deep"))
            continue
        reads = _reads if _reads is not None else [0]
        _reads = reads
        if reads[0] >= MAX_FILES:
            problems.append(replace(where, message=f"extends {file}: more than {MAX_FILES} parent files in all; not read"))
            continue
        reads[0] += 1
        try:
            parent = read(parent_name)
        except OSError as exc:
            problems.append(replace(where, message=f"extends {file}: cannot read {parent_name}: {exc.strerror or exc}"))
            continue
        parent = resolve_extends(parent, read, prepare, chain, reads)
        problems += parent.problems
        if parent.data is None:
            if not parent.problems:  # an empty parent gives nothing: a wrong file, not a silent no-op
                problems.append(replace(where, message=f"extends {file}: {parent_name} is empty; expected a mapping of fields"))
            continue
        if key:
            missing = _missing_key(parent.data, key)
            if missing is not None:
                message, suggestion = missing
                problems.append(replace(where, message=f"extends {file}: key {key}: {message}", suggestion=suggestion))
                continue
            parent = parent.select(tuple(key.split(".")))
        if not isinstance(parent.data, dict):
            problems.append(replace(where, message=f"extends {file}: expected a mapping of fields, got {describe(parent.data)}"))
            continue
        parent = prepare(parent)
        problems += [problem for problem in parent.problems if problem not in problems]
        parent_data = {name: value for name, value in parent.data.items() if name != "format_version"}
        parent_positions = {
            path: located if located.file else replace(located, file=parent.file) for path, located in parent.positions.items() if path
        }
        child_type, parent_type = own.get("type"), parent_data.get("type")
        if isinstance(child_type, str) and isinstance(parent_type, str) and child_type != parent_type:
            problems.append(replace(where, message=f"extends {file}: a config of type {parent_type}, this file is type {child_type}; a parent must be of the same type"))
            continue
        if merged is None:
            merged, positions = parent_data, parent_positions
        else:
            merged, positions = _merge(merged, positions, parent_data, parent_positions, ())
        reported |= {path for path in parent.reported}
    if merged is None:
        merged, positions = own, own_positions
    else:
        merged, positions = _merge(merged, positions, own, own_positions, ())
        positions.setdefault((), source.positions.get((), Located(None, _origin())))
    return replace(
        source, data=merged, positions=positions, problems=(*source.problems, *problems), reported=frozenset({*source.reported, *reported})
    )


def _origin() -> Any:
    from fastmoe_cfg.config.source import Position

    return Position(1, 1)


def _merge(base: Any, base_positions: dict[Path, Located], over: Any, over_positions: dict[Path, Located], path: Path) -> tuple[Any, dict[Path, Located]]:
    """`over` merged onto `base` (both whole trees at `path`), with the positions of what each wrote."""
    same_type = not (isinstance(base, dict) and isinstance(over, dict) and "type" in over and base.get("type") != over.get("type"))
    if isinstance(base, dict) and isinstance(over, dict) and (same_type or path == ()):
        data = dict(base)
        positions = dict(base_positions)
        for key, value in over.items():
            child = (*path, key)
            below_base = {key_path: at for key_path, at in positions.items() if key_path[: len(child)] == child}
            below_over = {key_path: at for key_path, at in over_positions.items() if key_path[: len(child)] == child}
            for key_path in below_base:
                del positions[key_path]
            if key in data:
                data[key], merged_positions = _merge(data[key], below_base, value, below_over, child)
            else:
                data[key], merged_positions = value, below_over
            positions.update(merged_positions)
        if path in over_positions:
            positions[path] = over_positions[path]
        return data, positions
    return over, dict(over_positions)


def _entries(source: Source, problems: list[Problem]) -> list[tuple[int, Path, str, str | None]]:
    """(index, path of the entry, file, key) for each well-formed entry of `extends`; bad ones become problems."""
    value = source.data[EXTENDS]
    items = value if isinstance(value, list) else [value]
    found = []
    for index, item in enumerate(items):
        entry_path: Path = (EXTENDS, index) if isinstance(value, list) else (EXTENDS,)
        if isinstance(item, str) and item and "\0" not in item:
            found.append((index, entry_path, item, None))
            continue
        if isinstance(item, dict) and isinstance(item.get("file"), str) and item["file"] and "\0" not in item["file"] and set(item) <= {"file", "key"}:
            key = item.get("key")
            if key is None or (isinstance(key, str) and key):
                found.append((index, (*entry_path, "file"), item["file"], key))
                continue
        message = f"expected a file name or {{file: NAME, key: DOTTED.KEY}}, got {describe(item)}"
        suggestion = None
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"file", "key"}, key=str)
            if unknown:
                message = f"unknown key {unknown[0]!r} in an extends entry; expected file and key"
                suggestion = did_you_mean(unknown[0], ["file", "key"])
        problems.append(source.problem(entry_path, "value", message=message, suggestion=suggestion))
    return found


def _missing_key(data: Any, key: str) -> tuple[str, str | None] | None:
    """(message, suggestion) when the parent has no mapping at the dotted `key`; None when it has."""
    parts = key.split(".")
    if not all(parts):
        return "expected a dotted path of keys, e.g. model.mlp", None
    node = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the document"
        if not isinstance(node, dict):
            return f"{where} is {describe(node)}, not a mapping", None
        if part not in node:
            return f"no key {part!r} in {where}", did_you_mean(part, node)
        node = node[part]
    return None


def _relative(child: str | None, name: str) -> str:
    """`name` relative to the folder of the file `child` (the working folder for standard input)."""
    if os.path.isabs(name) or not child or child.startswith("<"):
        return os.path.normpath(name)
    return os.path.normpath(os.path.join(os.path.dirname(child), name))


def _identity(name: str | None) -> str:
    return os.path.realpath(name) if name and not name.startswith("<") else (name or "<text>")


