"""Variants selected by `type:`, and entry-point plugins.

A dynamic base class declares `__default_variant__ = "name"`; its variants
register with `@Base.register("name")` and declare their tag as a field,
`type: Literal["name"]`. A field annotated with the base validates as a union
of the variants, chosen by the `type` key (the default variant when `type` is
absent).

Plugins: a distribution that declares entry points in the group
`fastmoe_cfg.variants` is loaded (its module imported, which registers its
variants) before the first lookup that could need it: a listing of the
variants, or data naming a `type` that no loaded variant has. No lookup
depends on import order, and validating a config of built-in variants does
not pay for scanning the installed distributions.

This module works on the classes it is given and imports nothing of the
config machinery (`base` imports it).
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable

from pydantic_core import core_schema

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


def plugins_loaded() -> bool:
    return _plugins_loaded


def variants_of(base: Any) -> dict[str, Any]:
    """Every variant of `base`, plugins included."""
    load_plugins()
    return registered(base)


def registered(base: Any) -> dict[str, Any]:
    """The variants of `base` registered so far (plugins loaded or not)."""
    if not base.is_dynamic():
        raise TypeError(f"{base.__name__} has no variants")
    return dict(base.__variants__ or {})


def register_variant(base: Any, name: str, variant: Any) -> None:
    if not base.is_dynamic():
        raise TypeError(f"{base.__name__} is not a dynamic base: declare __default_variant__ on it")
    registry = base.__variants__
    if registry.get(name, variant) is not variant:
        raise ValueError(f"{base.__name__} already has a variant {name!r} ({registry[name].__qualname__})")
    registry[name] = variant
    variant.__variant_name__ = name


def unregister_variant(base: Any, name: str) -> bool:
    """Remove a variant; True when there was one."""
    if base.__variants__ is not None and name in base.__variants__:
        del base.__variants__[name]
        return True
    return False


def rebuild(classes: Iterable[Any]) -> None:
    """A variant registered after first use (a late plugin) must reach the built validators.

    Every class already built is rebuilt (`model_rebuild(force=True)`), the classes
    it holds before it: pydantic reuses a nested class's built schema.
    """
    built = [klass for klass in classes if getattr(klass, "__pydantic_complete__", False)]
    order: list[Any] = []

    def visit(klass: Any, seen: set[Any]) -> None:
        if klass in order or klass in seen:
            return
        seen.add(klass)
        held = [klass.field_config_class(name) for name in klass.model_fields]
        if klass.is_dynamic():  # a base's schema is the union of its variants'
            held += list((klass.__variants__ or {}).values())
        for inner in [item for item in held if item is not None]:
            for member in (inner, *(inner.__variants__ or {}).values()) if inner.is_dynamic() else (inner,):
                visit(member, seen)
        order.append(klass)

    for klass in built:
        visit(klass, set())
    for klass in order:
        if klass in built:
            klass.model_rebuild(force=True)


def variant_union_schema(base: Any, handler: Any) -> core_schema.CoreSchema:
    """Core schema of a dynamic base: a tagged union over its variants, chosen by `type`."""
    # The variants registered so far: data naming another `type` loads the plugins first (`Config` does), and
    # loading a plugin rebuilds every built schema.
    choices = {name: handler.generate_schema(variant) for name, variant in registered(base).items()}
    default = base.__default_variant__

    def discriminator(value: Any) -> str | None:
        if isinstance(value, dict):
            tag = value.get("type", default)
            if tag is None:
                tag = default
            return tag if isinstance(tag, str) else f"<{type(tag).__name__}>"  # reported as unknown
        variant_name = getattr(type(value), "__variant_name__", False)
        if variant_name is not False:  # a config instance
            return variant_name or f"<{type(value).__name__}>"  # an unregistered class: reported
        return default  # the default variant reports "expected a mapping"

    return core_schema.tagged_union_schema(choices, discriminator)
