"""A minimal config file that uses a given class, for the end of its page.

The class is placed where the shortest chain of fields from a root puts it
(`pre_norm` of an MLPConfig for RMSNormalizationConfig), with `type:` written
wherever a non-default variant is on the way and on the class itself, and
required fields given the smallest value their type and bounds allow. Every
example is validated as it is generated: one that does not validate is a
`DocsError`.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import types
import typing
from dataclasses import dataclass
from typing import Any

from fastmoe_cfg.config.base import Config
from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.config.loader import load_text
from fastmoe_cfg.config.yaml_writer import dump_yaml
from fastmoe_cfg.docs_gen.catalog import Catalog, DocsError

__all__ = ["Example", "example_for"]


@dataclass(frozen=True)
class Example:
    yaml: str
    path: tuple[str, ...]  # field names from the root to the class ((): the class is the root)
    chain: tuple[type[Config], ...]  # the classes along the path, root first, the documented class's stand-in last


def example_for(klass: type[Config], catalog: Catalog) -> Example:
    target = catalog.selectable(klass)
    path, chain = _shortest_path(target, catalog)
    data: dict[str, Any] = _minimal(target, with_type=True)
    for owner, name in reversed(list(zip(chain[:-1], path))):
        held = owner.model_fields[name].annotation
        item = [data] if typing.get_origin(held) in (list, tuple) else data  # a list of configs holds one
        data = {**_minimal(owner, with_type=owner.__variant_name__ != _default_name(owner)), name: item}
    text = dump_yaml(data)
    root = next(root for root in catalog.roots if issubclass(chain[0], root))
    try:
        load_text(root, text, file="example.yaml")
    except ConfigError as exc:
        raise DocsError([f"{klass.__name__}: its generated example does not validate: {exc}"]) from None
    return Example(yaml=text, path=path, chain=chain)


def _default_name(klass: type[Config]) -> str | None:
    base = klass.dynamic_base()
    return base.__default_variant__ if base is not None else None


def _shortest_path(target: type[Config], catalog: Catalog) -> tuple[tuple[str, ...], tuple[type[Config], ...]]:
    """The chain of fields from a root's variant to `target` that needs the fewest `type:` keys, then the fewest levels.

    Dijkstra over classes; ties go to the earlier field in declaration order.
    """
    starts = [catalog.selectable(root) for root in catalog.roots]
    starts += [variant for root in catalog.roots if root.dynamic_base() is root for variant in root.variants().values()]
    order = itertools.count()
    heap = [(0, 0, next(order), start, (), (start,)) for start in dict.fromkeys(starts)]
    seen: set[type[Config]] = set()
    while heap:
        types_needed, depth, _, klass, path, chain = heapq.heappop(heap)
        if klass is target:
            return path, chain
        if klass in seen:
            continue
        seen.add(klass)
        cost = types_needed + (klass.__variant_name__ not in (None, _default_name(klass)))
        for name in klass.model_fields:
            holder = klass.field_config_class(name)
            if holder is None:
                continue
            choices = list(holder.variants().values()) if holder.dynamic_base() is holder else [holder]
            for choice in choices:
                heapq.heappush(heap, (cost, depth + 1, next(order), choice, (*path, name), (*chain, choice)))
    raise DocsError([f"{target.__name__}: not reachable from {', '.join(root.__name__ for root in catalog.roots)}"])


def _minimal(klass: type[Config], *, with_type: bool) -> dict[str, Any]:
    """`type` (when asked and the class is a variant) and a value for every required field."""
    data: dict[str, Any] = {}
    if with_type and klass.__variant_name__ is not None:
        data["type"] = klass.__variant_name__
    elif klass.__variant_name__ is None and "type" in klass.model_fields:
        tag = klass.model_fields["type"].annotation
        if typing.get_origin(tag) is typing.Literal:  # a root of its own told apart by `type` (a stack)
            data["type"] = typing.get_args(tag)[0]
    for name, info in klass.model_fields.items():
        if info.is_required():
            data[name] = _smallest_value(klass, name, info.annotation, info.metadata)
    return data


def _smallest_value(klass: type[Config], name: str, annotation: Any, metadata: list[Any]) -> Any:
    bounds = {kind: getattr(item, kind) for item in metadata for kind in ("ge", "gt") if hasattr(item, kind)}
    if annotation is bool:
        return False
    if annotation is int:
        return int(bounds["ge"]) if "ge" in bounds else int(bounds["gt"]) + 1 if "gt" in bounds else 0
    if annotation is float:
        return float(bounds["ge"]) if "ge" in bounds else float(bounds["gt"]) + 1.0 if "gt" in bounds else 0.0
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation)).value
    if isinstance(annotation, type) and issubclass(annotation, Config):
        return _minimal(annotation, with_type=False)
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation):
        return None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _smallest_value(klass, name, typing.get_args(annotation)[0], metadata)
    if annotation is dict or typing.get_origin(annotation) is dict:
        return {}
    raise DocsError([f"{klass.__name__}.{name}: cannot make an example value of type {annotation!r} for a required field"])
