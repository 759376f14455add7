"""Writing YAML: `dump_yaml` writes plain data; `edit_yaml` changes values inside an existing
text and keeps its comments and layout. Reading is `yaml_reader`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Mapping

from fastmoe_cfg.config.errors import Path

__all__ = ["Edit", "dump_yaml", "edit_yaml", "edit_yaml_ops"]


def dump_yaml(data: Mapping[str, Any], *, header: str | None = None, comments: Mapping[Any, str] | None = None) -> str:
    """Plain data -> YAML text (block style, keys in the given order).

    `header` becomes the comment lines above the document; `comments` an end-of-line comment on
    top-level keys (a key of `comments` that is a tuple is the path of a nested key), aligned in one
    column (at most 40), one line per value however long.
    """
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    document = _to_commented(data)
    if comments:
        yaml.width = 4096
        column = min(40, 2 + max(_line_length(data, key if isinstance(key, tuple) else (key,)) for key in [*data, *comments]))
        for key, comment in comments.items():
            if isinstance(key, tuple):
                parent = document
                for part in key[:-1]:
                    parent = parent[part]
                parent.yaml_add_eol_comment(comment, key[-1], column=column)
            else:
                document.yaml_add_eol_comment(comment, key, column=column)
    if header:
        document.yaml_set_start_comment(header)
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def _line_length(data: Mapping[str, Any], path: tuple) -> int:
    """The length of the line that writes `path` (`key:` for a mapping, `key: value` otherwise), indented."""
    value: Any = data
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    key = path[-1]
    return 2 * (len(path) - 1) + (len(str(key)) + 1 if isinstance(value, Mapping) else len(f"{key}: {value}"))


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


@dataclass(frozen=True)
class Edit:
    """One change to YAML text: `set` a value (creating parents; a new key goes after the key `after` when there
    is one, first when `after` is named but absent, last without `after`), `rename` a key in place (`value` is the
    new name), or `delete` a key."""

    op: str  # set | rename | delete
    path: Path
    value: Any = None
    after: str | None = None


def edit_yaml_ops(text: str, edits: list[Edit]) -> str:
    """Apply `edits` in order to YAML text, keeping comments, quotes and the order of the other keys."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line that was one line
    mapping, sequence, offset = _block_indents(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)  # the file's own, not ruamel's default
    document = yaml.load(text)
    if document is None:
        document = CommentedMap()
    for edit in edits:
        node = document
        for part in edit.path[:-1]:
            if not isinstance(node.get(part), Mapping):
                node[part] = CommentedMap()
            node = node[part]
        key = edit.path[-1]
        if edit.op == "delete":
            if key in node:
                del node[key]
        elif edit.op == "rename":
            if key in node and edit.value not in node:
                index = list(node).index(key)
                value = node[key]
                comment = node.ca.items.pop(key, None)
                del node[key]
                node.insert(index, edit.value, value)
                if comment is not None:
                    node.ca.items[edit.value] = comment
        elif key in node or not isinstance(node, CommentedMap):
            node[key] = _to_commented(edit.value)
        else:
            keys = list(node)
            index = len(keys) if edit.after is None else keys.index(edit.after) + 1 if edit.after in keys else 0
            node.insert(index, key, _to_commented(edit.value))
    stream = io.StringIO()
    yaml.dump(document, stream)
    out = stream.getvalue()
    if not text.endswith("\n\n"):  # a deleted last key leaves its line break behind
        out = out.rstrip("\n") + "\n"
    return out


def _block_indents(text: str) -> tuple[int, int, int]:
    """(mapping indent, a block list's item indent, offset of its dash) under their key, of the first such
    blocks in `text`; ruamel's defaults (2, 2, 0) where it has none."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    mapping = offset = None
    sequence = 2
    for parent, child in pairwise(lines):
        if not parent.split(" #")[0].rstrip().endswith(":"):
            continue
        depth = (len(child) - len(child.lstrip(" "))) - (len(parent) - len(parent.lstrip(" ")))
        item = child.lstrip(" ")
        if item.startswith("- ") or item.strip() == "-":
            if offset is None and depth >= 0:
                offset, sequence = depth, depth + max(2, len(item) - len(item[1:].lstrip(" ")))
        elif depth > 0 and mapping is None:
            mapping = depth
        if mapping is not None and offset is not None:
            break
    return mapping or 2, sequence, offset or 0
