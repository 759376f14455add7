"""Read a config from a YAML file: parse, resolve `extends`, select `--key`, migrate an older
version, apply `--set`, validate.

Every problem found on the way (YAML, extends, overrides, fields, cross-field rules)
is raised together as one `ConfigError`. What reading an older version changed comes
back as located warnings: `load` returns them, `load_file` and friends emit them as
`ConfigWarning`s.
"""

from __future__ import annotations

import warnings as python_warnings
from pathlib import Path as FilePath
from typing import Any, Callable, Iterable, TypeVar, Union

from pydantic import ValidationError

from fastmoe_cfg.config.base import Config
from fastmoe_cfg.config.errors import ConfigError, ConfigWarning, Path, Problem, format_path
from fastmoe_cfg.config.migrations import Migration, migrate, versions_of
from fastmoe_cfg.config.overrides import apply_overrides
from fastmoe_cfg.config.source import Source
from fastmoe_cfg.config.translate import problems_from_validation_error
from fastmoe_cfg.config.yaml_reader import parse_yaml, parse_yaml_bytes, read_yaml

C = TypeVar("C", bound=Config)
# A root class, or a function that picks one from the data (an MLP block or a stack, by `type:`).
Root = Union[type[Config], Callable[[Any], type[Config]]]


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


class Loaded:
    """A validated config and how it was read: the source (values with the file, line and column that
    wrote each, across `extends`), the warnings of an older version, and what migrating it changed.
    (A plain class: a dataclass costs milliseconds at import, on the path of every `validate`.)"""

    def __init__(self, config: Any, source: Source, warnings: tuple[Problem, ...] = (), migration: Migration | None = None):
        self.config, self.source, self.warnings = config, source, warnings
        self.migration = migration if migration is not None else Migration()


def load_file(
    cls: type[C], path: str | FilePath, *, key: str | None = None, overrides: Iterable[str] = (),
    display_name: str | None = None,
) -> C:
    """Load and validate `cls` (a dynamic base returns the variant chosen by `type:`) from a YAML file."""
    return _warned(load(cls, read_yaml(path, display_name=display_name), key=key, overrides=overrides))


def load_text(cls: type[C], text: str, *, file: str | None = None, key: str | None = None, overrides: Iterable[str] = ()) -> C:
    return _warned(load(cls, parse_yaml(text, file), key=key, overrides=overrides))


def load_bytes(cls: type[C], raw: bytes, *, file: str | None = None, key: str | None = None, overrides: Iterable[str] = ()) -> C:
    """As `load_text`, from undecoded bytes (standard input): bad UTF-8 is a located problem."""
    return _warned(load(cls, parse_yaml_bytes(raw, file), key=key, overrides=overrides))


def _warned(loaded: Loaded) -> Any:
    for problem in loaded.warnings:
        python_warnings.warn(ConfigWarning(problem), stacklevel=3)
    return loaded.config


def load(root: Root, source: Source, *, key: str | None = None, overrides: Iterable[str] = ()) -> Loaded:
    """Everything `load_file` does, on a parsed source; returns the config with its source and warnings.

    `root` is the class to validate, or a function choosing it from the data after `extends`
    and `--key` (a stack or an MLP block). Raises ConfigError with every problem.
    """
    found: list[Problem] = []

    def choose(data: Any) -> type[Config]:
        return root if isinstance(root, type) else root(data)

    def prepare_parent(parent: Source) -> Source:
        migrated, migration = migrate(parent, versions_of(choose(parent.data)))
        found.extend(migration.warnings)
        return migrated

    source, migration = prepare(source, key, overrides, choose=choose, prepare_parent=prepare_parent)
    cls = choose(source.data)
    config = validate_source(cls, source)
    # A version-1 file over a version-1 parent migrates the parent's values twice (as the parent, then merged):
    # one warning each.
    warnings = tuple(dict.fromkeys((*found, *migration.warnings)))
    return Loaded(config, source, warnings, migration)


def prepare(
    source: Source, key: str | None, overrides: Iterable[str], *,
    choose: Callable[[Any], type[Config]] | None = None, prepare_parent: Callable[[Source], Source] | None = None,
) -> tuple[Source, Migration]:
    """Resolve `extends`, select `key`, migrate an older version (when `choose` names a class with
    versions), apply the overrides. Raises ConfigError when there is nothing left to validate."""
    if isinstance(overrides, str):  # one override given as a plain string
        overrides = [overrides]
    if source.data is None and source.problems:
        raise ConfigError(source.problems)
    if isinstance(source.data, dict) and "extends" in source.data:  # paths relative to the file (to here for text)
        from fastmoe_cfg.config.extends import resolve_extends

        source = resolve_extends(source, read_yaml, prepare_parent or (lambda parent: parent))
    if key:
        try:
            path = parse_key(key)
        except ValueError as exc:
            raise ConfigError([*source.problems, source.problem((), "value", message=f"--key {key!r}: {exc}")]) from None
        source = source.select(path)
    migration = Migration()
    if choose is not None and isinstance(source.data, dict):
        source, migration = migrate(source, versions_of(choose(source.data)))
    return apply_overrides(source, overrides), migration


def validate_source(cls: type[C], source: Source) -> C:
    problems = list(source.problems)
    if source.data is None:
        problems.append(source.problem((), "value", message="the document is empty; expected a mapping of fields"))
        raise ConfigError(problems)
    cls.load_plugins_for(source.data)
    try:
        config = cls.model_validate(source.data)
    except ValidationError as exc:
        nested = _nested_config(cls, source.data) if not source.prefix else None
        for problem in problems_from_validation_error(exc, cls, source):
            if nested is not None and problem.path == nested[0] and problem.message == "unknown field":
                problem = _with_key_hint(problem, nested[1])
            elif problem.message == "unknown field" and (problem.path or "").rsplit(".", 1)[-1] == "extends":
                from dataclasses import replace

                message = "unknown field: extends is read at the root of a file only (not inside a mapping, nor at a --key)"
                problem = replace(problem, message=message)
            problems.append(problem)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config  # type: ignore[return-value]


def _nested_config(cls: type[Config], data: Any) -> tuple[str, str] | None:
    """(top-level key, dotted path) of a mapping inside `data` that looks like a config of `cls`, if any.

    A file that holds a whole model (`model: {mlp: {...}}`) gets a hint at the
    `--key` that selects its MLP, instead of only "unknown field" at `model`.
    """
    if not isinstance(data, dict):
        return None
    stack: list[tuple[Path, Any]] = [((key,), value) for key, value in data.items() if isinstance(value, dict)]
    found: list[tuple[int, Path]] = []
    while stack:
        path, value = stack.pop(0)
        if _looks_like(cls, value):
            found.append((len(value), path))
        if len(path) < 4:
            stack += [((*path, key), item) for key, item in value.items() if isinstance(item, dict)]
    if not found:
        return None
    path = max(found, key=lambda item: item[0])[1]  # the fullest one (not an anchor of shared defaults)
    return str(path[0]), format_path(path)


def _looks_like(cls: type[Config], data: dict[str, Any]) -> bool:
    """Every key is a field of the variant that `type` names (the default one without it), and there are some."""
    klass: Any = cls
    if cls.is_dynamic():
        tag = data.get("type") or cls.__default_variant__
        klass = cls.variants().get(tag) if isinstance(tag, str) else None
    return klass is not None and bool(data) and all(isinstance(key, str) and key in klass.model_fields for key in data)


def _with_key_hint(problem: Any, key: str) -> Any:
    from dataclasses import replace

    return replace(problem, message=f"unknown field; the config seems to be at {key}: select it with --key {key}")
