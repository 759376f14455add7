"""The `Config` base class, tiers, described enums and the `field()` helper.

Generic machinery: nothing here knows about MoE, and nothing imports torch.

A config class is a frozen, strict pydantic model whose fields are declared
with `field(default, tier=..., desc=...)`. Derived defaults (`Derived`) and
cross-field rules (`Rule`) are declared as data on the class so that the
validator, the docs and `explain` all read the same declaration.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, ClassVar, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticUndefined

from fastmoe_cfg.config import registry
from fastmoe_cfg.config.errors import format_number
from fastmoe_cfg.config.translate import RULE_ERROR, config_error

__all__ = [
    "Config",
    "Derived",
    "DescribedEnum",
    "Provenance",
    "Renamed",
    "Rule",
    "Tier",
    "all_config_classes",
    "field",
    "format_value",
    "plain_data",
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


@dataclass(frozen=True)
class Renamed:
    """A name from another system (`n_shared_experts`) and the field it means here, with a note when
    the value does not carry over as it is (`experts = n_routed_experts + n_shared_experts`)."""

    field: str
    note: str | None = None


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
    """The subclass of `base` inside an annotation like `X`, `X | None` or `list[X]`, or None."""
    if isinstance(annotation, type) and issubclass(annotation, base):
        return annotation
    if typing.get_origin(annotation) in (list, tuple) and typing.get_args(annotation):  # a list of configs
        return _class_in(typing.get_args(annotation)[0], base)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _class_in(arg, base)
            if found is not None:
                return found
    return None


class _ConfigMeta(type(BaseModel)):  # type: ignore[misc]
    """Direct construction (`MoEMLPConfig(experts=8)`) raises `ConfigError`; a dynamic base builds its variant.

    Nested validation never calls the class, so pydantic's own errors reach the
    parent's validator, which reports them all together.
    """

    def __call__(cls, *args: Any, **data: Any) -> Any:
        if args:
            raise TypeError(f"{cls.__name__}() takes keyword arguments only")
        cls.load_plugins_for(data)
        if cls.is_dynamic():
            # `MLPBaseConfig(type="moe", ...)` builds the variant `type` names (the default one without it).
            name = data.get("type") or cls.__default_variant__
            variant = registry.registered(cls).get(name) if isinstance(name, str) else None
            if variant is None:
                cls.from_dict(data)  # raises the ConfigError that names the unknown type
            return variant(**data)
        try:
            return super().__call__(**data)
        except ValidationError as exc:
            raise config_error(exc, cls) from None


class Config(BaseModel, metaclass=_ConfigMeta):
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

    # The class-level names below carry their types for type checkers only: pydantic evaluates the
    # (string) annotations of a model's underscore names again for every subclass, which was ~2.5% of
    # the instructions of a `validate` cold start (benchmarks/cli_startup.py).
    if typing.TYPE_CHECKING:
        __derived__: ClassVar[tuple[Derived, ...]]
        __rules__: ClassVar[tuple[Rule, ...]]
        __renamed__: ClassVar[dict[str, str | Renamed]]
        __default_variant__: ClassVar[str | None]
        __variants__: ClassVar[dict[str, type[Config]] | None]
        __variant_name__: ClassVar[str | None]
        _derived: frozenset[str]

    # Declared per class; collected along the MRO by `derived_defaults()` / `rules()`.
    __derived__ = ()
    __rules__ = ()
    # Names users may bring from other systems (a field name, or a `Renamed` with a note).
    __renamed__ = {}
    # Variants: a dynamic base declares `__default_variant__`; `register` fills the rest.
    __default_variant__ = None
    __variants__ = None
    __variant_name__ = None

    _derived = PrivateAttr(default=frozenset())

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, info in cls.model_fields.items():
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
        return registry.variant_union_schema(cls, handler)

    @classmethod
    def register(cls, name: str) -> Callable[[type[Config]], type[Config]]:
        """Class decorator: register a variant selected with `type: name`.

        The variant declares its tag: `type: Literal["name"] = field("name", tier="core", desc=...)`.
        """

        def decorator(variant: type[Config]) -> type[Config]:
            if not (isinstance(variant, type) and issubclass(variant, cls)):
                raise TypeError(f"variant {name!r} of {cls.__name__} must subclass it")
            declared = variant.model_fields.get("type")
            if declared is None or typing.get_origin(declared.annotation) is not Literal or typing.get_args(declared.annotation) != (name,):
                raise TypeError(
                    f"variant {name!r} of {cls.__name__} ({variant.__qualname__}) must declare its tag: "
                    f"type: Literal[{name!r}] = field({name!r}, tier=\"core\", desc=...)"
                )
            registry.register_variant(cls, name, variant)
            registry.rebuild(all_config_classes())
            return variant

        return decorator

    @classmethod
    def unregister(cls, name: str) -> None:
        """Remove a variant (for tests and plugin reloads); validators are rebuilt without it."""
        if registry.unregister_variant(cls, name):
            registry.rebuild(all_config_classes())

    @classmethod
    def variants(cls) -> dict[str, type[Config]]:
        """The registered variants of this dynamic base, plugins included, by name."""
        return registry.variants_of(cls)

    @classmethod
    def load_plugins_for(cls, data: Any) -> None:
        """Load the plugins when `data` names a `type` that no variant registered so far has."""
        if not registry.plugins_loaded() and cls._names_unknown_type(data):
            registry.load_plugins()

    @classmethod
    def _names_unknown_type(cls, data: Any) -> bool:
        if not isinstance(data, dict):
            return False
        klass: Any = cls
        if cls.is_dynamic():
            tag = data.get("type") or cls.__default_variant__
            if not isinstance(tag, str):
                return False  # not a name: reported as such
            klass = registry.registered(cls).get(tag)
            if klass is None:
                return True
        for name, value in data.items():
            held = klass.field_config_class(name) if isinstance(name, str) else None
            if held is not None and held._names_unknown_type(value):
                return True
        return False

    # ------------------------------------------------------------- introspection
    @classmethod
    def derived_defaults(cls) -> tuple[Derived, ...]:
        return tuple(d for klass in reversed(cls.__mro__) for d in klass.__dict__.get("__derived__", ()))

    @classmethod
    def rules(cls) -> tuple[Rule, ...]:
        return tuple(r for klass in reversed(cls.__mro__) for r in klass.__dict__.get("__rules__", ()))

    @classmethod
    def renamed_fields(cls) -> dict[str, Renamed]:
        renamed: dict[str, Renamed] = {}
        for klass in reversed(cls.__mro__):
            for name, target in klass.__dict__.get("__renamed__", {}).items():
                renamed[name] = target if isinstance(target, Renamed) else Renamed(target)
        return renamed

    @classmethod
    def field_tier(cls, name: str) -> Tier:
        return Tier(cls.model_fields[name].json_schema_extra["x-tier"])  # type: ignore[index]

    @classmethod
    def field_description(cls, name: str) -> str:
        return cls.model_fields[name].description or ""

    @classmethod
    def fields_by_tier(cls) -> list[tuple[Tier, list[str]]]:
        """The field names grouped by tier, tiers in their order, names alphabetical within a tier."""
        groups = [(tier, sorted(name for name in cls.model_fields if cls.field_tier(name) is tier)) for tier in TIER_ORDER]
        return [(tier, names) for tier, names in groups if names]

    @classmethod
    def field_config_class(cls, name: str) -> type[Config] | None:
        """The config class a field holds (its base when it is dynamic), if any."""
        info = cls.model_fields.get(name)
        return None if info is None else _class_in(info.annotation, Config)

    @classmethod
    def field_enum_class(cls, name: str) -> type[enum.Enum] | None:
        info = cls.model_fields.get(name)
        return None if info is None else _class_in(info.annotation, enum.Enum)

    @classmethod
    def field_default(cls, name: str) -> Any:
        """The declared default of a field (not a derived one); PydanticUndefined if required."""
        return cls.model_fields[name].get_default(call_default_factory=True)

    def provenance(self, name: str) -> Provenance:
        """Where a field's value came from: `set` by the user, `default`, or `derived` from others."""
        if name not in type(self).model_fields:
            raise KeyError(name)
        if name in self._derived:
            return "derived"
        return "set" if name in self.model_fields_set else "default"

    def iter_fields(self) -> Iterator[tuple[str, Any]]:
        for name in type(self).model_fields:
            yield name, getattr(self, name)

    # ---------------------------------------------------------------- validation
    @classmethod
    def from_dict(cls, data: Any) -> Config:
        """Validate plain data (as read from YAML/JSON); raises `ConfigError` with every problem."""
        cls.load_plugins_for(data)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error(exc, cls) from None

    @model_validator(mode="wrap")
    @classmethod
    def _validate_config(cls, data: Any, handler: Any) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        if cls.__variant_name__ is not None and "type" in data and data["type"] is None:
            data = {key: value for key, value in data.items() if key != "type"}  # `type: null`: the default
        try:
            config = handler(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            failed = {error["loc"][0] for error in errors if error["loc"]}
            values = cls._valid_values(data, failed)
            cls._derive(values, data)
            line_errors = [_reraisable(error) for error in errors] + cls._rule_errors(values)
            raise ValidationError.from_exception_data(exc.title, line_errors) from None
        # Derived defaults are computed from the validated values, then validated themselves (a second pass).
        values = dict(config.iter_fields())
        derived = cls._derive(values, data)
        if derived:
            config = handler({**data, **{name: values[name] for name in derived}})
            config._derived = frozenset(derived)  # a private attribute: allowed on a frozen model
        line_errors = cls._rule_errors(dict(config.iter_fields()))
        if line_errors:
            raise ValidationError.from_exception_data(cls.__name__, line_errors)
        return config

    @classmethod
    def _derive(cls, values: dict[str, Any], data: dict[str, Any]) -> list[str]:
        """Fill in `values` the derived defaults that `data` leaves unset (absent or null); return their names.

        A derived default whose dependencies are not all valid is left out of `values`:
        the dependency's own error is reported, and no rule judges a value derived from it.
        """
        derived: list[str] = []
        for rule in cls.derived_defaults():
            if data.get(rule.field) is not None:
                continue
            if not all(name in values for name in rule.depends_on):
                values.pop(rule.field, None)
                continue
            values[rule.field] = rule.compute(**{name: values[name] for name in rule.depends_on})
            derived.append(rule.field)
        return derived

    @classmethod
    def _valid_values(cls, data: dict[str, Any], failed: set[Any]) -> dict[str, Any]:
        """The validated values of the fields that are valid in `data` (on the error path).

        Each value is validated alone with its field's own type and constraints,
        so a rule sees a nested config as a config even when a sibling field failed;
        a field with an invalid value is left out (its own error is reported).
        """
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            if name in failed:
                continue
            if name not in data:
                default = cls.field_default(name)
                if default is not PydanticUndefined:
                    values[name] = default
                continue
            try:
                values[name] = _field_adapter(cls, name).validate_python(data[name])
            except ValidationError:  # the value is invalid: its field reports it
                continue
        return values

    @classmethod
    def _rule_errors(cls, values: dict[str, Any]) -> list[InitErrorDetails]:
        """Problems of the declared rules (and of the 64-bit range of integers) on the valid `values`."""
        errors: list[InitErrorDetails] = []
        for name, value in values.items():
            if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX:
                errors.append(_custom_error(name, "must fit in a 64-bit integer", value))
        for rule in cls.rules():
            if not all(name in values for name in rule.fields):
                continue  # a field of the rule is invalid: its own error is reported
            arguments = {name: values[name] for name in rule.fields}
            if not rule.check(**arguments):
                errors.append(_custom_error(rule.fields[0], rule.message(**arguments), arguments[rule.fields[0]], rule.fields))
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
        from fastmoe_cfg.config.yaml_writer import dump_yaml

        return dump_yaml(self.to_dict(resolved=resolved))

    def to_dict(self, *, resolved: bool = False) -> dict[str, Any]:
        """Plain data for YAML/JSON: the fields that were set (every field if `resolved`).

        A variant always writes its `type`, so the data loads back as the same class.
        """
        out: dict[str, Any] = {}
        for name, value in self.iter_fields():
            keep = resolved or self.provenance(name) == "set" or (name == "type" and self.__variant_name__)
            if keep:
                out[name] = plain_data(value, resolved)
        return out


def all_config_classes() -> list[type[Config]]:
    """Every subclass of Config defined so far, parents before children."""
    seen: list[type[Config]] = []
    stack = [Config]
    while stack:
        klass = stack.pop()
        for sub in klass.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return seen


@functools.lru_cache(maxsize=None)
def _field_adapter(cls: type[Config], name: str) -> TypeAdapter[Any]:
    """Validates one field's value alone: its type and constraints, strict as the models are."""
    info = cls.model_fields[name]
    annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    if cls.field_config_class(name) is not None:
        return TypeAdapter(annotation)  # config classes carry their own (strict) settings
    return TypeAdapter(annotation, config=ConfigDict(strict=True, allow_inf_nan=False))


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


def format_value(value: Any) -> str:
    """A value as it would be written in YAML flow style."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, Config):
        return format_value(value.to_dict())
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {format_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return str(value)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _custom_error(name: str, message: str, value: Any, fields: tuple[str, ...] = ()) -> InitErrorDetails:
    """A problem of ours at `name`; `fields` are all the fields a rule involves (the report may blame another)."""
    kind = PydanticCustomError(RULE_ERROR, "{message}", {"message": message, "fields": list(fields or (name,))})
    return InitErrorDetails(type=kind, loc=(name,), input=value)


def _reraisable(error: dict[str, Any]) -> InitErrorDetails:
    """Turn a reported error back into one pydantic can raise again (custom types need a template)."""
    ctx = error.get("ctx")
    if error["type"] == RULE_ERROR:
        kind: Any = PydanticCustomError(RULE_ERROR, "{message}", ctx)
        return InitErrorDetails(type=kind, loc=error["loc"], input=error["input"])
    details = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
    if ctx is not None:
        details["ctx"] = ctx
    return details
