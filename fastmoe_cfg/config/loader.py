"""Read a config from a YAML file: parse, select `--key`, apply `--set`, validate.

Every problem found on the way (YAML, overrides, fields, cross-field rules)
is raised together as one `ConfigError`.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Iterable, TypeVar

from pydantic import ValidationError

from fastmoe_cfg.config.base import Config
from fastmoe_cfg.config.errors import ConfigError, format_path, problems_from_validation_error
from fastmoe_cfg.config.overrides import apply_overrides
from fastmoe_cfg.config.yaml_io import Source, parse_yaml, read_yaml

C = TypeVar("C", bound=Config)


def parse_key(key: str | None) -> tuple[str, ...]:
    """`"model.mlp"` -> `("model", "mlp")`; None or "" -> the document root.

    Raises ValueError for an empty segment (`model..mlp`, `.`).
    """
    if not key:
        return ()
    parts = tuple(key.split("."))
    if not all(parts):
        raise ValueError("expected a dotted path of keys, e.g. model.mlp")
    return parts


def load_file(
    cls: type[C], path: str | FilePath, *, key: str | None = None, overrides: Iterable[str] = (),
    display_name: str | None = None,
) -> C:
    """Load and validate `cls` (a dynamic base returns the variant chosen by `type:`) from a YAML file."""
    return validate_source(cls, prepare(read_yaml(path, display_name=display_name), key, overrides))


def load_text(cls: type[C], text: str, *, file: str | None = None, key: str | None = None, overrides: Iterable[str] = ()) -> C:
    return validate_source(cls, prepare(parse_yaml(text, file), key, overrides))


def prepare(source: Source, key: str | None, overrides: Iterable[str]) -> Source:
    if isinstance(overrides, str):  # one override given as a plain string
        overrides = [overrides]
    if source.data is None and source.problems:
        raise ConfigError(source.problems)
    if key:
        try:
            path = parse_key(key)
        except ValueError as exc:
            raise ConfigError([*source.problems, source.problem((), "value", message=f"--key {key!r}: {exc}")]) from None
        source = source.select(path)
    return apply_overrides(source, overrides)


def validate_source(cls: type[C], source: Source) -> C:
    problems = list(source.problems)
    if source.data is None:
        problems.append(source.problem((), "value", message="the document is empty; expected a mapping of fields"))
        raise ConfigError(problems)
    try:
        config = cls.model_validate(source.data)
    except ValidationError as exc:
        reported = {format_path(source.prefix + path) for path in source.bad_paths}
        for problem in problems_from_validation_error(exc, cls, source):
            if not any(problem.path == bad or problem.path.startswith(bad + ".") for bad in reported):
                problems.append(problem)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config  # type: ignore[return-value]
