"""Dotted `key.sub=value` overrides (`--set`), applied to data read from YAML.

Values parse as YAML flow scalars or flow mappings (`experts=8`,
`routing=sinkhorn`, `pre_norm={type: rms_norm}`); a missing parent mapping
is created (`pre_norm.type=rms_norm`). A problem in an override names the
override, not a line.
"""

from __future__ import annotations

from typing import Iterable

from fastmoe_cfg.config.errors import ConfigError, Path, Problem, format_path
from fastmoe_cfg.config.source import Source
from fastmoe_cfg.config.yaml_reader import parse_yaml


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
    """`source` with the overrides applied, in order; their problems are added to it.

    An override that a later one replaces (`--set pre_norm.epsilon=1e-5 --set pre_norm=null`, or the
    same key twice) would be silently dropped: it is a problem naming both.
    """
    applied: list[tuple[int, str, Path]] = []
    for order, text in enumerate(overrides):
        try:
            path, raw = parse_override(text)
        except OverrideSyntaxError as exc:
            raise ConfigError([*source.problems, Problem(str(exc), file=source.file, override=text, order=order)]) from None
        parsed = parse_yaml(raw, file=None)
        if parsed.problems:
            shown = format_path(source.prefix + path)
            source = source.with_problems(
                *(Problem(problem.message, shown, source.file, override=text, order=order) for problem in parsed.problems)
            )
            continue
        source = source.with_override(text, order, path, parsed.data)
        applied.append((order, text, path))
    for index, (order, text, path) in enumerate(applied):
        later = next((other for _, other, other_path in applied[index + 1 :] if path[: len(other_path)] == other_path), None)
        if later is not None:
            message = f"no effect: the later --set {later} replaces it (remove one of them)"
            source = source.with_problems(Problem(message, format_path(source.prefix + path), source.file, override=text, order=order))
    return source
