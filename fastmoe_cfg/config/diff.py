"""The fields in which two resolved configs differ, each with its tier and where each side's value came from.

Nested configs of the same class are compared field by field (a difference carries the
innermost field's tier: `layer_1.weight.initialization.std` is a feature, not an
architecture change); a nested config whose class differs (`pre_norm: layer_norm` vs
`rms_norm`, or null) is one difference at the field that holds it, with that field's tier.
Two configs of different classes differ in their `type`, which counts as architecture.
Generic: nothing here knows about MoE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fastmoe_cfg.config.base import Config, Tier, format_value, plain_data
from fastmoe_cfg.config.errors import Path

__all__ = ["Difference", "Side", "diff_configs"]


@dataclass(frozen=True)
class Side:
    """One side's value: plain data, how it was set (set / default / derived / absent), and where."""

    value: Any
    source: str
    where: str | None = None  # file:line:col (or an HF field) for a set value
    shown: Any = None  # what text shows: a nested config's set fields only (`{type: rms_norm}`)

    @property
    def display(self) -> str:
        if self.source == "absent":
            return "(absent)"
        return format_value(self.value if self.shown is None else self.shown)

    @property
    def origin(self) -> str:
        return f"{self.source}, {self.where}" if self.where else self.source

    @property
    def text(self) -> str:
        """The value and where it came from: `4 (set, b.yaml:3:1)`, `0.01 (derived)`, `(absent)`."""
        return self.display if self.source == "absent" else f"{self.display} ({self.origin})"

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "where": self.where}


@dataclass(frozen=True)
class Difference:
    path: Path
    tier: Tier
    a: Side
    b: Side
    layers: str | None = None  # in stacks: the layers where this difference is (`3-60`)


# The file format's version: the loader has applied the migrations to the current format, so two configs that
# differ only there describe the same layer (a version-1 file and its `upgrade` are identical).
NOT_COMPARED = ("format_version",)

# Where a set value was written: the path (inside the config) -> "file:line:col", or None.
Where = Callable[[Path], "str | None"]


def _nowhere(path: Path) -> str | None:
    return None


def diff_configs(a: Config, b: Config, *, where_a: Where = _nowhere, where_b: Where = _nowhere, prefix: Path = ()) -> list[Difference]:
    """Every field in which `a` and `b` differ (same class: field by field; else their type first)."""
    differences: list[Difference] = []
    if type(a) is not type(b):
        tag_a, tag_b = getattr(a, "type", None), getattr(b, "type", None)
        differences.append(
            Difference((*prefix, "type"), Tier.architecture, _side(a, "type", where_a, prefix), _side(b, "type", where_b, prefix))
        )
        if tag_a == tag_b:  # same tag, other classes (a plugin): nothing more to compare field by field
            return differences
    names = list(type(a).model_fields) + [name for name in type(b).model_fields if name not in type(a).model_fields]
    for name in names:
        if name == "type" and type(a) is not type(b) or name in NOT_COMPARED:
            continue
        in_a, in_b = name in type(a).model_fields, name in type(b).model_fields
        if not (in_a and in_b) and (a if in_a else b).provenance(name) != "set":
            continue  # a field of one variant only, left at its default: the type's difference says it
        value_a = getattr(a, name) if in_a else None
        value_b = getattr(b, name) if in_b else None
        path = (*prefix, name)
        if in_a and in_b and isinstance(value_a, Config) and isinstance(value_b, Config) and type(value_a) is type(value_b):
            differences += diff_configs(
                value_a, value_b, where_a=lambda p: where_a(p), where_b=lambda p: where_b(p), prefix=path
            )
            continue
        if in_a and in_b and plain_data(value_a) == plain_data(value_b):
            continue
        owner = type(a) if in_a else type(b)
        differences.append(
            Difference(
                path,
                owner.field_tier(name),
                _side(a, name, where_a, prefix) if in_a else Side(None, "absent"),
                _side(b, name, where_b, prefix) if in_b else Side(None, "absent"),
            )
        )
    return differences


def _side(config: Config, name: str, where: Where, prefix: Path) -> Side:
    source = config.provenance(name)
    value = getattr(config, name)
    shown = plain_data(value, resolved=False) if isinstance(value, Config) else None
    return Side(plain_data(value), source, where((*prefix, name)) if source == "set" else None, shown)
