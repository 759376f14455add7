"""Variants selected by `type:`, and entry-point plugins.

A dynamic base class declares `__default_variant__ = "name"`; its variants
register with `@Base.register("name")`. A field annotated with the base
validates as a union of the variants, chosen by the `type` key (the default
variant when `type` is absent).

Plugins: a distribution that declares entry points in the group
`fastmoe_cfg.variants` is loaded (its module imported, which registers its
variants) before the first variant lookup, so no lookup depends on import
order.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

from pydantic.fields import FieldInfo
from pydantic_core import core_schema

if TYPE_CHECKING:
    from fastmoe_cfg.config.base import Config

ENTRY_POINT_GROUP = "fastmoe_cfg.variants"

_plugins_loaded = False


def load_plugins() -> None:
    """Import every entry point of the group `fastmoe_cfg.variants` (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as exc:  # a broken plugin must not break the built-in variants, nor go unnoticed
            message = f"fastmoe_cfg plugin {entry_point.name!r} ({entry_point.value}) failed to load: {exc}"
            warnings.warn(message, RuntimeWarning, stacklevel=2)


def variants_of(base: type[Config]) -> dict[str, type[Config]]:
    if not base.is_dynamic():
        raise TypeError(f"{base.__name__} has no variants")
    load_plugins()
    return dict(base.__variants__ or {})


def register_variant(base: type[Config], name: str, variant: type[Config]) -> None:
    if not base.is_dynamic():
        raise TypeError(f"{base.__name__} is not a dynamic base: declare __default_variant__ on it")
    if not (isinstance(variant, type) and issubclass(variant, base)):
        raise TypeError(f"variant {name!r} of {base.__name__} must subclass it")
    registry = base.__variants__ if base.__variants__ is not None else {}
    if registry.get(name, variant) is not variant:
        raise ValueError(f"{base.__name__} already has a variant {name!r} ({registry[name].__qualname__})")
    registry[name] = variant
    variant.__variant_name__ = name
    _pin_type_field(base, variant, name)
    _rebuild_built_configs()


def unregister_variant(base: type[Config], name: str) -> None:
    """Remove a variant (for tests and plugin reloads); validators are rebuilt without it."""
    if base.__variants__ is not None and name in base.__variants__:
        del base.__variants__[name]
        _rebuild_built_configs()


def _pin_type_field(base: type[Config], variant: type[Config], name: str) -> None:
    """Give the variant a `type: Literal[name] = name` field with the base's description."""
    declared = base.__pydantic_fields__.get("type")
    extra = dict(declared.json_schema_extra) if declared is not None else {"x-tier": "core"}  # type: ignore[arg-type]
    description = declared.description if declared is not None else "Selects the variant."
    pinned = FieldInfo(annotation=Literal[name], default=name, description=description, json_schema_extra=extra)
    fields = {"type": pinned}
    fields.update((key, value) for key, value in variant.__pydantic_fields__.items() if key != "type")
    variant.__pydantic_fields__ = fields


def all_config_classes() -> list[type[Config]]:
    """Every subclass of Config defined so far, parents before children."""
    from fastmoe_cfg.config.base import Config

    seen: list[type[Config]] = []
    stack = [Config]
    while stack:
        klass = stack.pop()
        for sub in klass.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return seen


def _rebuild_built_configs() -> None:
    """A variant registered after first use (a late plugin) must reach the built validators.

    Every built validator is reset to pydantic's not-yet-built state (as with
    `defer_build`), so each is rebuilt, from the current registry, on next use.
    """
    from pydantic._internal._mock_val_ser import set_model_mocks

    for klass in all_config_classes():
        if klass.__pydantic_complete__:
            set_model_mocks(klass)
            klass.__pydantic_complete__ = False


def variant_union_schema(base: type[Config], handler: Any) -> core_schema.CoreSchema:
    """Core schema of a dynamic base: a tagged union over its variants, chosen by `type`."""
    from fastmoe_cfg.config.base import Config

    choices = {name: handler.generate_schema(variant) for name, variant in variants_of(base).items()}
    default = base.__default_variant__

    def discriminator(value: Any) -> str | None:
        if isinstance(value, dict):
            tag = value.get("type", default)
            if tag is None:
                tag = default
            return tag if isinstance(tag, str) else f"<{type(tag).__name__}>"  # reported as unknown
        if isinstance(value, Config):
            return value.__variant_name__ or f"<{type(value).__name__}>"  # an unregistered class: reported
        return default  # the default variant reports "expected a mapping"

    return core_schema.tagged_union_schema(choices, discriminator)
