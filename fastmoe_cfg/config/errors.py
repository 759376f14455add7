"""`ConfigError`: every problem of a config at once, each with its location.

One line per problem, one template::

    moe.yaml:7:3: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 0 > 2)
    moe.yaml:4:1: experts_per_tokn: unknown field (did you mean experts_per_token?)
    --set experts=abc: experts: expected an integer, got string 'abc'

Paths are YAML paths from the document root, never Python class names.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

if TYPE_CHECKING:
    from pydantic import ValidationError

    from fastmoe_cfg.config.base import Config

Path = tuple[Any, ...]


@dataclass(frozen=True)
class Problem:
    """One problem: where it is, which field, what is wrong, and a suggestion if any."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None
    override: str | None = None
    order: int = field(default=0, compare=False, repr=False)  # command-line position of an override

    @property
    def where(self) -> str:
        if self.override is not None:
            return f"--set {self.override}"
        if self.file is not None and self.line is not None:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file or ""

    def render(self) -> str:
        """One line: `where: path: message (did you mean suggestion?)`; control characters escaped."""
        parts = [part for part in (self.where, self.path) if part]
        text = self.message if self.suggestion is None else f"{self.message} (did you mean {self.suggestion}?)"
        return _one_line(": ".join([*parts, text]))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["order"]
        return data

    def sort_key(self) -> tuple[Any, ...]:
        return (self.override is not None, self.order, self.file or "", self.line or 0, self.column or 0)


class ConfigError(ValueError):
    """A config has problems; `problems` lists all of them, sorted by position."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(problem.render() for problem in self.problems))

    @classmethod
    def from_validation_error(cls, exc: ValidationError, root: type[Config], locator: Locator | None = None) -> ConfigError:
        return cls(problems_from_validation_error(exc, root, locator))


class Locator(Protocol):
    """Maps a YAML path to where it is written (file position or `--set` override)."""

    def problem(self, path: Path, kind: str, **fields: Any) -> Problem: ...

    def origin(self, path: Path) -> str | None:
        """"override" when a `--set` wrote the path, "file" when the file did, None otherwise."""
        ...


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Sequence[Any]) -> str:
    """`("layer_1", "bias", "enabled")` -> `layer_1.bias.enabled`; list items as `[i]`, odd keys quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = str(part)
        if not _PLAIN_KEY.fullmatch(key):
            key = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        text += f".{key}" if text else key
    return text


def _one_line(text: str) -> str:
    return "".join(
        char if unicodedata.category(char) not in ("Cc", "Zl", "Zp") else f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}"
        for char in text
    )


def did_you_mean(word: Any, candidates: Iterable[str]) -> str | None:
    if not isinstance(word, str):
        return None
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def describe(value: Any) -> str:
    """How a found value is named in a message: `string 'abc'`, `integer 3`, `a mapping`, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"integer {format_number(value)}"
    if isinstance(value, float):
        return f"number {format_number(value)}"
    if isinstance(value, str):
        return f"string {shorten(repr(value))}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


_MAX_SHOWN = 60


def shorten(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def format_number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}<a {value.bit_length()}-bit integer>"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
    return repr(value)


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
        owner = klass
        klass = klass.field_config_class(part) if klass is not None and isinstance(part, str) else None
    return tuple(path), owner, klass


def problems_from_validation_error(exc: ValidationError, root: type[Config], locator: Locator | None = None) -> list[Problem]:
    """One `Problem` per pydantic error, in our words, located by `locator` (paths only without one)."""
    locator = locator or _NoLocation()
    return [_problem(error, root, locator) for error in exc.errors(include_url=False)]


def _problem(error: dict[str, Any], root: type[Config], locator: Locator) -> Problem:
    kind, value = error["type"], error["input"]
    path, owner, klass = _walk(root, error["loc"])
    ctx = error.get("ctx") or {}
    name = path[-1] if path else None
    if kind == "extra_forbidden":
        fields = list(owner.__pydantic_fields__) if owner is not None else []
        renamed = owner.renamed_fields() if owner is not None else {}
        suggestion = renamed.get(name) if isinstance(name, str) and name in renamed else did_you_mean(name, fields)
        return locator.problem(path, "key", message=_unknown_field(owner, name), suggestion=suggestion)
    if kind == "union_tag_invalid" and klass is not None and klass.is_dynamic():
        known = sorted(klass.variants())
        tag = value.get("type") if isinstance(value, dict) else ctx.get("tag")
        if isinstance(tag, str):
            message = f"unknown type {shorten(repr(tag))}; expected one of: {', '.join(known)}"
        else:
            message = f"expected a variant name (one of: {', '.join(known)}), got {describe(tag)}"
        return locator.problem((*path, "type"), "value", message=message, suggestion=did_you_mean(tag, known))
    if kind == "missing":
        return locator.problem(path, "missing", message="missing required field")
    if kind == "cfg_rule":
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


def _unknown_field(owner: type[Config] | None, name: Any) -> str:
    """`unknown field`, and when another variant of the same family has it, which one."""
    base = owner.dynamic_base() if owner is not None else None
    if base is None or owner is None or owner.__variant_name__ is None:
        return "unknown field"
    others = sorted(
        variant_name for variant_name, variant in base.variants().items() if variant is not owner and name in variant.__pydantic_fields__
    )
    if not others:
        return "unknown field"
    return f"unknown field for type: {owner.__variant_name__} (a field of type: {' or '.join(others)})"


class _NoLocation:
    """Locator for configs built from Python data: paths only."""

    def problem(self, path: Path, kind: str, **fields: Any) -> Problem:
        return Problem(path=format_path(path), **fields)

    def origin(self, path: Path) -> str | None:
        return None
