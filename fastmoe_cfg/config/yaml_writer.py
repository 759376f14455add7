"""Writing YAML: `dump_yaml` writes plain data; `edit_yaml` changes values inside an existing
text and keeps its comments and layout. Reading is `yaml_reader`.
"""

from __future__ import annotations

import io
from typing import Any, Mapping

from fastmoe_cfg.config.errors import Path

__all__ = ["dump_yaml", "edit_yaml"]


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
