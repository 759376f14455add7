"""Pydantic's validation errors in our words: one `Problem` per error, at its YAML path.

`loc` tuples become YAML paths (variant tags stripped), error kinds become
messages in one template, and a locator (a `Source`) gives each its
`file:line:col` or the `--set` that wrote it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from fastmoe_cfg.config.errors import ConfigError, Path, Problem, describe, did_you_mean, format_number, format_path, shorten

if TYPE_CHECKING:
    from pydantic import ValidationError

    from fastmoe_cfg.config.base import Config

__all__ = ["Locator", "config_error", "problem_from_error", "problems_from_validation_error"]


class Locator(Protocol):
    """Maps a YAML path to where it is written (file position or `--set` override)."""

    def problem(self, path: Path, kind: str, **fields: Any) -> Problem: ...

    def origin(self, path: Path) -> str | None:
        """"override" when a `--set` wrote the path, "file" when the file did, None otherwise."""
        ...

    def is_reported(self, path: Path) -> bool:
        """Whether the value at `path` was already reported (while reading): not to be reported twice."""
        ...


RULE_ERROR = "cfg_rule"  # the error kind of our cross-field rules (base.py raises it)

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
# YAML 1.1 booleans that YAML 1.2 (and so this reader) reads as strings.
_YAML_1_1_BOOLEANS = {"yes": "true", "no": "false", "on": "true", "off": "false", "y": "true", "n": "false"}


def config_error(exc: ValidationError, root: type[Config], locator: Locator | None = None) -> ConfigError:
    return ConfigError(problems_from_validation_error(exc, root, locator))


def problems_from_validation_error(exc: ValidationError, root: type[Config], locator: Locator | None = None) -> list[Problem]:
    """One `Problem` per pydantic error, in our words, located by `locator` (paths only without one)."""
    locator = locator or _NoLocation()
    problems = []
    for error in exc.errors(include_url=False):
        path, owner, klass = _walk(root, error["loc"])
        if not locator.is_reported(path):
            problems.append(_problem(error, path, owner, klass, locator))
    return problems


def problem_from_error(error: dict[str, Any], path: Path, locator: Locator) -> Problem:
    """One pydantic error of a plain model (not a `Config`: no variants, tiers or rules) at `path`, in our words."""
    return _problem(error, path, None, None, locator)


def _walk(root: type[Config], loc: Sequence[Any]) -> tuple[Path, type[Config] | None, type[Config] | None]:
    """Strip the variant tags pydantic puts in `loc`; return (yaml path, owner class, class at path)."""
    path: list[Any] = []
    owner: type[Config] | None = None
    klass: type[Config] | None = root
    for part in loc:
        if klass is not None and klass.is_dynamic():
            variants = klass.variants()
            if isinstance(part, str) and part in variants:
                klass = variants[part]
                continue
        path.append(part)
        if isinstance(part, int) and klass is not None:  # an item of a list of configs: the same class
            continue
        owner = klass
        klass = klass.field_config_class(part) if klass is not None and isinstance(part, str) else None
    return tuple(path), owner, klass


def _problem(error: dict[str, Any], path: Path, owner: type[Config] | None, klass: type[Config] | None, locator: Locator) -> Problem:
    kind, value = error["type"], error["input"]
    ctx = error.get("ctx") or {}
    name = path[-1] if path else None
    if kind == "extra_forbidden":
        return locator.problem(path, "key", **_unknown_field(owner, name))
    if kind == "union_tag_invalid" and klass is not None and klass.is_dynamic():
        known = sorted(klass.variants())
        tag = value.get("type") if isinstance(value, dict) else ctx.get("tag")
        suggestion = did_you_mean(tag, known)
        if isinstance(tag, str):
            message = f"unknown type {shorten(repr(tag))}; expected one of: {', '.join(known)}"
            if suggestion is None:  # not a typo of a known one: a variant that an uninstalled plugin would add
                message += " (is the plugin that provides it installed?)"
        else:
            message = f"expected a variant name (one of: {', '.join(known)}), got {describe(tag)}"
        return locator.problem((*path, "type"), "value", message=message, suggestion=suggestion)
    if kind == "missing":
        return locator.problem(path, "missing", message="missing required field")
    if kind == RULE_ERROR and "layers" in ctx:
        # A problem of some layers' block in a stack: at the value that wrote it, named by the block's own path.
        problem = locator.problem(path, "value", message=ctx["message"], suggestion=ctx.get("suggestion"), layers=ctx["layers"])
        return replace(problem, path=ctx.get("path", problem.path))
    if kind == RULE_ERROR:
        # Blame the field the user touched: an override first, then one written in the file.
        candidates = [(*path[:-1], field) for field in ctx.get("fields", [name])]
        for wanted in ("override", "file"):
            blamed = next((candidate for candidate in candidates if locator.origin(candidate) == wanted), None)
            if blamed is not None:
                return locator.problem(blamed, "key", message=ctx["message"])
        return locator.problem(path, "key", message=ctx["message"])
    if kind == "enum":
        enum_class = owner.field_enum_class(name) if owner is not None else None
        known = [member.value for member in enum_class] if enum_class is not None else []
        message = f"expected one of {', '.join(known)}; got {describe(value)}" if known else error["msg"]
        return locator.problem(path, "value", message=message, suggestion=did_you_mean(value, known))
    if kind == "literal_error":
        return locator.problem(path, "value", message=f"expected {ctx.get('expected')}, got {describe(value)}")
    if kind in ("bool_type", "bool_parsing") and isinstance(value, str) and value.lower() in _YAML_1_1_BOOLEANS:
        message = f"expected true or false, got {describe(value)}: YAML 1.2 reads yes, no, on and off as strings"
        return locator.problem(path, "value", message=message, suggestion=_YAML_1_1_BOOLEANS[value.lower()])
    if kind in _EXPECTED:
        return locator.problem(path, "value", message=f"expected {_EXPECTED[kind]}, got {describe(value)}")
    if kind == "finite_number":
        return locator.problem(path, "value", message=f"expected a finite number, got {format_number(value)}")
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        bound = ctx[key]
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return locator.problem(path, "value", message=f"must be {symbol} {bound}, got {format_number(value)}")
    message = error["msg"]
    return locator.problem(path, "value", message=message[:1].lower() + message[1:])


def _unknown_field(owner: type[Config] | None, name: Any) -> dict[str, Any]:
    """Message and suggestion for an unknown key: a known other name, a close field, or the variant that has it."""
    if owner is None:
        return {"message": "unknown field"}
    renamed = owner.renamed_fields()
    if isinstance(name, str) and name in renamed:
        target = renamed[name]
        return {"message": f"unknown field; {target.note}" if target.note else "unknown field", "suggestion": target.field}
    suggestion = did_you_mean(name, owner.model_fields)
    base = owner.dynamic_base()
    if base is None or owner.__variant_name__ is None:
        return {"message": "unknown field", "suggestion": suggestion}
    others = sorted(
        variant_name for variant_name, variant in base.variants().items() if variant is not owner and name in variant.model_fields
    )
    if not others:
        return {"message": "unknown field", "suggestion": suggestion}
    return {"message": f"unknown field for type: {owner.__variant_name__} (a field of type: {' or '.join(others)})", "suggestion": suggestion}


class _NoLocation:
    """Locator for configs built from Python data: paths only."""

    def problem(self, path: Path, kind: str, **fields: Any) -> Problem:
        return Problem(path=format_path(path), **fields)

    def origin(self, path: Path) -> str | None:
        return None

    def is_reported(self, path: Path) -> bool:
        return False
