"""The `Config` base class, tiers, described enums and the `field()` helper.

Generic machinery: nothing here knows about MoE, and nothing imports torch.

A config class is a frozen, strict pydantic model whose fields are declared
with `field(default, tier=..., desc=...)`. Derived defaults (`Derived`) and
cross-field rules (`Rule`) are declared as data on the class so that the
validator, the docs and `explain` all read the same declaration.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticUndefined

__all__ = [
    "Config",
    "Derived",
    "DescribedEnum",
    "Provenance",
    "Rule",
    "Tier",
    "field",
]


class Tier(enum.StrEnum):
    """Who a field is for. Every field carries exactly one tier."""

    core = "core"
    architecture = "architecture"
    feature = "feature"
    performance = "performance"
    expert = "expert"
    deprecated = "deprecated"

    @property
    def description(self) -> str:
        return _TIER_DESCRIPTIONS[self]


_TIER_DESCRIPTIONS = {
    Tier.core: "What everyone sets: the variant and the main choices.",
    Tier.architecture: "Changes the parameters or the math of the model: two configs that differ only "
    "outside this tier load the same checkpoint.",
    Tier.feature: "Changes training behaviour or results in other ways (losses, noise, learning rates, "
    "initialization).",
    Tier.performance: "Changes speed or memory only, never results.",
    Tier.expert: "For people who know the internals; the defaults are right for almost everyone.",
    Tier.deprecated: "Kept for old configs; will be removed.",
}

TIER_ORDER: tuple[Tier, ...] = tuple(Tier)

Provenance = Literal["set", "default", "derived"]


class DescribedEnum(enum.StrEnum):
    """A string enum whose members each carry a one-line description.

    Declare members as `name = "value", "description"`. The member's value is
    its name (`member == value`), so YAML and Python accept the same strings.
    """

    description: str

    def __new__(cls, value: str, description: str = "") -> DescribedEnum:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    @classmethod
    def dynamic_base(cls) -> type[Config] | None:
        """The base whose variant this class is (itself for a base), None outside any family."""
        return next((klass for klass in cls.__mro__ if isinstance(klass, type) and issubclass(klass, Config) and klass.is_dynamic()), None)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        schema = handler(source)
        # Accept the string values even though models are strict.
        schema["strict"] = False
        return schema

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        json_schema = handler.resolve_ref_schema(handler(core_schema))
        json_schema["x-enum-descriptions"] = {member.value: member.description for member in cls}
        return json_schema


@dataclass(frozen=True)
class Derived:
    """A default computed from other fields before validation.

    `compute` receives the raw values of `depends_on` (already defaulted) as
    keyword arguments; `doc` says the rule in words for docs and `explain`.
    """

    field: str
    depends_on: tuple[str, ...]
    compute: Callable[..., Any]
    doc: str


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: `check(**values)` must hold for `fields`.

    The problem is reported at the first field; `message(**values)` says what
    is wrong with the numbers, `doc` states the rule in words.
    """

    fields: tuple[str, ...]
    check: Callable[..., bool]
    message: Callable[..., str]
    doc: str


_RULE_ERROR = "cfg_rule"


def field(
    default: Any = PydanticUndefined,
    *,
    tier: Tier | str,
    desc: str | None = None,
    default_factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    allow_inf_nan: bool | None = None,
) -> Any:
    """Declare a config field: default, tier, description and constraints in one place.

    Constraints are data (`ge`, `gt`, `le`, `lt`), so they reach the JSON
    schema, the docs and `explain`. Infinite and NaN floats are rejected
    unless `allow_inf_nan=True`.
    """
    extra = {"x-tier": Tier(tier).value}
    kwargs: dict[str, Any] = dict(
        description=desc, ge=ge, gt=gt, le=le, lt=lt, allow_inf_nan=allow_inf_nan, json_schema_extra=extra
    )
    if default_factory is not None:
        if default is not PydanticUndefined:
            raise TypeError("field(): give a default or a default_factory, not both")
        return Field(default_factory=default_factory, **kwargs)
    return Field(default, **kwargs)


def _class_in(annotation: Any, base: type) -> Any:
    """The subclass of `base` inside an annotation like `X` or `X | None`, or None."""
    if isinstance(annotation, type) and issubclass(annotation, base):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _class_in(arg, base)
            if found is not None:
                return found
    return None


class Config(BaseModel):
    """Base class of every config: frozen, strict, unknown keys forbidden."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
        allow_inf_nan=False,
        validate_default=False,
        protected_namespaces=(),
    )

    # Declared per class; collected along the MRO by `derived_defaults()` / `rules()`.
    __derived__: ClassVar[tuple[Derived, ...]] = ()
    __rules__: ClassVar[tuple[Rule, ...]] = ()
    # Names users may bring from other systems, with the field they mean.
    __renamed__: ClassVar[dict[str, str]] = {}
    # Variants: a dynamic base declares `__default_variant__`; the registry module fills the rest.
    __default_variant__: ClassVar[str | None] = None
    __variants__: ClassVar[dict[str, type[Config]] | None] = None
    __variant_name__: ClassVar[str | None] = None

    _derived: frozenset[str] = PrivateAttr(default=frozenset())

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, info in cls.__pydantic_fields__.items():
            extra = info.json_schema_extra
            if not isinstance(extra, dict) or "x-tier" not in extra:
                raise TypeError(
                    f"{cls.__name__}.{name}: every config field needs a tier; "
                    f"declare it with field(..., tier=...)"
                )
        if cls.is_dynamic():
            cls.__variants__ = {}

    # ------------------------------------------------------------------ variants
    @classmethod
    def is_dynamic(cls) -> bool:
        """True for a base class whose variants are chosen by `type:`."""
        return cls.__dict__.get("__default_variant__") is not None

    @classmethod
    def dynamic_base(cls) -> type[Config] | None:
        """The base whose variant this class is (itself for a base), None outside any family."""
        return next((klass for klass in cls.__mro__ if isinstance(klass, type) and issubclass(klass, Config) and klass.is_dynamic()), None)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        if not cls.is_dynamic():
            return handler(source)
        from fastmoe_cfg.config.registry import variant_union_schema

        return variant_union_schema(cls, handler)

    @classmethod
    def register(cls, name: str) -> Callable[[type[Config]], type[Config]]:
        """Class decorator: register a variant selected with `type: name`."""
        from fastmoe_cfg.config.registry import register_variant

        def decorator(variant: type[Config]) -> type[Config]:
            register_variant(cls, name, variant)
            return variant

        return decorator

    @classmethod
    def variants(cls) -> dict[str, type[Config]]:
        """The registered variants of this dynamic base, plugins included, by name."""
        from fastmoe_cfg.config.registry import variants_of

        return variants_of(cls)

    # ------------------------------------------------------------- introspection
    @classmethod
    def derived_defaults(cls) -> tuple[Derived, ...]:
        return tuple(d for klass in reversed(cls.__mro__) for d in klass.__dict__.get("__derived__", ()))

    @classmethod
    def rules(cls) -> tuple[Rule, ...]:
        return tuple(r for klass in reversed(cls.__mro__) for r in klass.__dict__.get("__rules__", ()))

    @classmethod
    def renamed_fields(cls) -> dict[str, str]:
        renamed: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            renamed.update(klass.__dict__.get("__renamed__", {}))
        return renamed

    @classmethod
    def field_tier(cls, name: str) -> Tier:
        return Tier(cls.__pydantic_fields__[name].json_schema_extra["x-tier"])  # type: ignore[index]

    @classmethod
    def field_config_class(cls, name: str) -> type[Config] | None:
        """The config class a field holds (its base when it is dynamic), if any."""
        info = cls.__pydantic_fields__.get(name)
        return None if info is None else _class_in(info.annotation, Config)

    @classmethod
    def field_enum_class(cls, name: str) -> type[enum.Enum] | None:
        info = cls.__pydantic_fields__.get(name)
        return None if info is None else _class_in(info.annotation, enum.Enum)

    @classmethod
    def field_default(cls, name: str) -> Any:
        """The declared default of a field (not a derived one); PydanticUndefined if required."""
        return cls.__pydantic_fields__[name].get_default(call_default_factory=True)

    def provenance(self, name: str) -> Provenance:
        """Where a field's value came from: `set` by the user, `default`, or `derived` from others."""
        if name not in type(self).__pydantic_fields__:
            raise KeyError(name)
        if name in self._derived:
            return "derived"
        return "set" if name in self.model_fields_set else "default"

    def iter_fields(self) -> Iterator[tuple[str, Any]]:
        for name in type(self).__pydantic_fields__:
            yield name, getattr(self, name)

    # ---------------------------------------------------------------- validation
    def __new__(cls, /, *args: Any, **data: Any) -> Any:
        # `MLPBaseConfig(type="moe", ...)` builds the variant `type` names (the default one without it).
        if cls.is_dynamic() and not args:
            name = data.get("type") or cls.__default_variant__
            variant = cls.variants().get(name) if isinstance(name, str) else None
            if variant is None:
                cls.from_dict(data)  # raises the ConfigError that names the unknown type
            return super().__new__(variant)
        return super().__new__(cls)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            from fastmoe_cfg.config.errors import ConfigError

            raise ConfigError.from_validation_error(exc, type(self)) from None

    # Tell pydantic this __init__ only wraps its own: it must not call it for nested validation.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: Any) -> Config:
        """Validate plain data (as read from YAML/JSON); raises `ConfigError` with every problem."""
        from fastmoe_cfg.config.errors import ConfigError

        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError.from_validation_error(exc, cls) from None

    @model_validator(mode="wrap")
    @classmethod
    def _validate_config(cls, data: Any, handler: Any) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        if cls.__variant_name__ is not None and "type" in data and data["type"] is None:
            data = {key: value for key, value in data.items() if key != "type"}  # `type: null`: the default
        data, derived = cls._fill_derived(data)
        try:
            config = handler(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            failed = {error["loc"][0] for error in errors if error["loc"]}
            line_errors = [_reraisable(error) for error in errors]
            line_errors += cls._rule_errors(lambda name: _raw_or_default(cls, data, name), failed)
            raise ValidationError.from_exception_data(exc.title, line_errors) from None
        config.__pydantic_fields_set__.difference_update(derived)
        config.__pydantic_private__["_derived"] = frozenset(derived)
        line_errors = cls._rule_errors(lambda name: getattr(config, name), set())
        if line_errors:
            raise ValidationError.from_exception_data(cls.__name__, line_errors)
        return config

    @classmethod
    def _fill_derived(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        filled: list[str] = []
        for rule in cls.derived_defaults():
            if data.get(rule.field) is not None:
                continue
            values = {name: _raw_or_default(cls, data, name) for name in rule.depends_on}
            try:
                value = rule.compute(**values)
            except Exception:  # a dependency has a wrong type: its own error is reported
                continue
            data = {**data, rule.field: value}
            filled.append(rule.field)
        return data, filled

    @classmethod
    def _rule_errors(cls, value_of: Callable[[str], Any], failed: set[Any]) -> list[InitErrorDetails]:
        """Problems of the declared rules (and of the 64-bit range of integers) on fields that validated."""
        errors: list[InitErrorDetails] = []
        for name in cls.__pydantic_fields__:
            value = value_of(name) if name not in failed else None
            if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX:
                errors.append(_custom_error(name, "must fit in a 64-bit integer", value))
        for rule in cls.rules():
            if failed.intersection(rule.fields):
                continue
            values = {name: value_of(name) for name in rule.fields}
            try:
                ok = rule.check(**values)
            except Exception:  # values of unexpected types were reported by their own fields
                continue
            if not ok:
                errors.append(_custom_error(rule.fields[0], rule.message(**values), values[rule.fields[0]], rule.fields))
        return errors

    # ---------------------------------------------------------- equality / dump
    def __eq__(self, other: object) -> bool:
        # Provenance (set / default / derived) does not take part in equality.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.__dict__.values())))

    def dump(self, *, resolved: bool = False) -> str:
        """YAML text of `to_dict(resolved=...)`: loads back to an equal config (derived values stay derived)."""
        from fastmoe_cfg.config.yaml_io import dump_yaml

        return dump_yaml(self.to_dict(resolved=resolved))

    def to_dict(self, *, resolved: bool = False) -> dict[str, Any]:
        """Plain data for YAML/JSON: the fields that were set (every field if `resolved`).

        A variant always writes its `type`, so the data loads back as the same class.
        """
        out: dict[str, Any] = {}
        for name, value in self.iter_fields():
            keep = resolved or name in self.model_fields_set or (name == "type" and self.__variant_name__)
            if keep:
                out[name] = plain_data(value, resolved)
        return out


def plain_data(value: Any, resolved: bool = True) -> Any:
    """A field value as plain JSON data (configs as mappings, enums as their strings)."""
    if isinstance(value, Config):
        return value.to_dict(resolved=resolved)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [plain_data(item, resolved) for item in value]
    if isinstance(value, dict):
        return {key: plain_data(item, resolved) for key, item in value.items()}
    return value


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _custom_error(name: str, message: str, value: Any, fields: tuple[str, ...] = ()) -> InitErrorDetails:
    """A problem of ours at `name`; `fields` are all the fields a rule involves (the report may blame another)."""
    kind = PydanticCustomError(_RULE_ERROR, "{message}", {"message": message, "fields": list(fields or (name,))})
    return InitErrorDetails(type=kind, loc=(name,), input=value)


def _raw_or_default(cls: type[Config], data: dict[str, Any], name: str) -> Any:
    if name in data:
        return data[name]
    return cls.field_default(name)


def _reraisable(error: dict[str, Any]) -> InitErrorDetails:
    """Turn a reported error back into one pydantic can raise again (custom types need a template)."""
    ctx = error.get("ctx")
    if error["type"] == _RULE_ERROR:
        kind: Any = PydanticCustomError(_RULE_ERROR, "{message}", ctx)
        return InitErrorDetails(type=kind, loc=error["loc"], input=error["input"])
    details = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
    if ctx is not None:
        details["ctx"] = ctx
    return details
