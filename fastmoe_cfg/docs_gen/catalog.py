"""What the reference documents: the config classes and enums reachable from the roots, and how they relate.

A class is documented when it is reachable from a root (`MLPBaseConfig`)
through variants, parents and fields, or when it is a registered variant of
any dynamic base (plugins included). `builtin_only` keeps the classes defined
inside `fastmoe_cfg` (what the committed `docs/reference/` holds).

A class or enum that cannot be documented (no docstring, a field or member
without a description) is a `DocsError` listing every such problem: it is
never skipped.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

from fastmoe_cfg.config.base import Config, DescribedEnum
from fastmoe_cfg.config.base import all_config_classes

__all__ = ["Catalog", "DocsError", "build_catalog", "docstring"]


class DocsError(Exception):
    """The reference cannot be generated; `problems` lists every reason."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("cannot generate the reference docs:\n" + "\n".join(f"  {line}" for line in self.problems))


def docstring(obj: type) -> str | None:
    """The class's own docstring as one paragraph (an inherited one does not count)."""
    text = obj.__dict__.get("__doc__")
    return " ".join(text.split()) if isinstance(text, str) and text.strip() else None


def _is_builtin(obj: type) -> bool:
    return obj.__module__.split(".")[0] == "fastmoe_cfg"


def _registered(klass: type[Config]) -> bool:
    """A class selectable with `type:` right now (an unregistered leftover does not count)."""
    base = klass.dynamic_base()
    name = klass.__variant_name__
    return base is not None and name is not None and base.variants().get(name) is klass


@dataclass(frozen=True)
class Catalog:
    """The documented classes and enums, in page order, and who uses whom."""

    roots: tuple[type[Config], ...]
    classes: tuple[type[Config], ...]
    enums: tuple[type[DescribedEnum], ...]

    def owners(self, target: type) -> list[tuple[type[Config], list[str]]]:
        """(documented class, its field names) for every field that holds `target`.

        A variant is held by the fields declared with its dynamic base.
        """
        accepted = {target}
        if isinstance(target, type) and issubclass(target, Config) and _registered(target):
            accepted.add(target.dynamic_base())
        found = []
        for klass in self.classes:
            names = [
                name
                for name in klass.model_fields
                if klass.field_config_class(name) in accepted or klass.field_enum_class(name) in accepted
            ]
            if names:
                found.append((klass, names))
        return found

    def is_root(self, klass: type[Config]) -> bool:
        """A class that can be a whole config file (a root or one of its variants)."""
        return any(issubclass(klass, root) for root in self.roots)

    def selectable(self, klass: type[Config]) -> type[Config]:
        """The class a YAML mapping becomes when it is meant as `klass`.

        A dynamic base becomes its default variant; a base that is not a
        variant itself (e.g. AffineNormalizationConfig) its first registered
        subclass; any other class itself.
        """
        base = klass.dynamic_base()
        if base is None or _registered(klass):
            return klass
        variants = base.variants()
        if klass is base and base.__default_variant__ in variants:
            return variants[base.__default_variant__]
        for variant in variants.values():
            if issubclass(variant, klass):
                return variant
        raise DocsError([f"{klass.__name__}: no registered variant of {base.__name__} derives from it"])


def build_catalog(roots: tuple[type[Config], ...], *, builtin_only: bool = True) -> Catalog:
    """Walk the registry from `roots`; raise `DocsError` if anything found cannot be documented."""
    keep = _is_builtin if builtin_only else (lambda obj: True)
    classes: list[type[Config]] = []
    enums: list[type[DescribedEnum]] = []
    queue: deque[type[Config]] = deque()

    def add(klass: type[Config]) -> None:
        if klass is not Config and klass not in classes and keep(klass):
            classes.append(klass)
            queue.append(klass)

    def walk(start: type[Config]) -> None:
        add(start)
        while queue:
            klass = queue.popleft()
            if klass.dynamic_base() is klass:
                for variant in klass.variants().values():
                    add(variant)
            for parent in klass.__mro__[1:]:
                if isinstance(parent, type) and issubclass(parent, Config):
                    add(parent)
            for name in klass.model_fields:
                nested = klass.field_config_class(name)
                if nested is not None:
                    add(nested)
                kind = klass.field_enum_class(name)
                if kind is not None and kind not in enums and keep(kind):
                    enums.append(kind)  # type: ignore[arg-type]

    for root in roots:
        walk(root)
    for klass in all_config_classes():  # every registered variant of any family, plugins included
        if _registered(klass):
            walk(klass)
    _check_documented(classes, enums)
    return Catalog(roots=roots, classes=tuple(classes), enums=tuple(enums))


def _check_documented(classes: list[type[Config]], enums: list[type[enum.Enum]]) -> None:
    problems: list[str] = []
    names: dict[str, Any] = {}
    for obj in [*classes, *enums]:
        where = f"{obj.__name__} ({obj.__module__})"
        if obj.__name__ in names:
            problems.append(f"{where}: two documented classes share this name (the other is in {names[obj.__name__].__module__})")
        names[obj.__name__] = obj
        if docstring(obj) is None:
            problems.append(f"{where}: no docstring")
    for klass in classes:
        for name, info in klass.model_fields.items():
            if not (info.description or "").strip():
                problems.append(f"{klass.__name__}.{name} ({klass.__module__}): no description (field(..., desc=...))")
    for kind in enums:
        for member in kind:
            if not (getattr(member, "description", "") or "").strip():
                problems.append(f"{kind.__name__}.{member.name} ({kind.__module__}): no description")
    if problems:
        raise DocsError(problems)
