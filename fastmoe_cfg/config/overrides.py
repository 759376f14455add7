"""Dotted `key.sub=value` overrides (`--set`), applied to data read from YAML.

Values parse as YAML flow scalars or flow mappings (`experts=8`,
`routing=sinkhorn`, `pre_norm={type: rms_norm}`); a missing parent mapping
is created (`pre_norm.type=rms_norm`). A problem in an override names the
override, not a line.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from fastmoe_cfg.config.errors import ConfigError, Path, Problem, describe, format_path
from fastmoe_cfg.config.yaml_io import Source, parse_yaml


class OverrideSyntaxError(ValueError):
    """An override that is not `KEY=VALUE` with a dotted KEY."""


def parse_override(text: str) -> tuple[Path, str]:
    """`"router.weight.lr_scale=0.5"` -> `(("router", "weight", "lr_scale"), "0.5")`."""
    key, separator, value = text.partition("=")
    parts = tuple(part.strip() for part in key.split("."))
    if not separator or not all(parts):
        raise OverrideSyntaxError("expected KEY=VALUE with a dotted KEY, e.g. --set experts=8")
    return parts, value


def apply_overrides(source: Source, overrides: Iterable[str]) -> Source:
    """A copy of `source` with the overrides applied; their problems are added to it."""
    result = Source(
        copy.deepcopy(source.data), source.file, dict(source.positions), list(source.problems),
        source.prefix, dict(source.overrides), set(source.bad_paths),
    )
    for order, text in enumerate(overrides):
        try:
            path, raw = parse_override(text)
        except OverrideSyntaxError as exc:
            raise ConfigError([*result.problems, Problem(str(exc), file=result.file, override=text, order=order)]) from None
        _apply_one(result, text, path, raw, order)
    return result


def _apply_one(source: Source, text: str, path: Path, raw: str, order: int) -> None:
    shown = format_path(source.prefix + path)
    parsed = parse_yaml(raw, file=None)
    if parsed.problems:
        for problem in parsed.problems:
            source.problems.append(Problem(problem.message, shown, source.file, override=text, order=order))
        return
    if source.data is None:
        source.data = {}
    node: Any = source.data
    for depth, part in enumerate(path[:-1]):
        if not isinstance(node, dict):
            break
        if node.get(part) is None:
            node[part] = {}
            source.overrides.setdefault(path[: depth + 1], (text, order))  # created by this override
        node = node[part]
        if not isinstance(node, dict):
            where = format_path(source.prefix + path[: depth + 1])
            source.problems.append(Problem(f"cannot set {shown}: {where} is {describe(node)}, not a mapping", shown, source.file, override=text, order=order))
            return
    if not isinstance(node, dict):
        source.problems.append(Problem(f"cannot set {shown}: the document is {describe(node)}, not a mapping", shown, source.file, override=text, order=order))
        return
    node[path[-1]] = parsed.data
    for written in [written for written in source.positions if written[: len(path)] == path]:
        del source.positions[written]
    source.bad_paths = {bad for bad in source.bad_paths if bad[: len(path)] != path}
    source.overrides[path] = (text, order)
