"""Markdown of the reference pages: one per config class and per enum, an index and the Tiers page.

Pages link to each other by file name (`MoEMLPConfig.md`), all in one folder,
so they read the same on the site and in the repository. A field's anchor is
its name (`MoEMLPConfig.md#experts_per_token`). Nothing here needs MkDocs.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Callable

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from fastmoe_cfg.config.base import TIER_ORDER, Config, Tier
from fastmoe_cfg.docs_gen.catalog import Catalog, DocsError, docstring
from fastmoe_cfg.docs_gen.examples import example_for
from fastmoe_cfg.config.base import format_value

__all__ = ["BANNER", "class_page", "enum_page", "index_page", "page_name", "tiers_page", "type_text"]

BANNER = "<!-- Generated from the schemas by `fastmoe-cfg docs generate`: do not edit. -->"
TIERS_PAGE = "tiers.md"
INDEX_PAGE = "index.md"
# Headings of a class page besides the tiers: a field with one of these names would share its anchor.
_SECTION_ANCHORS = {"example", "used-in", "fields"}
_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def page_name(obj: type) -> str:
    return f"{obj.__name__}.md"


def _link(obj: type, anchor: str = "") -> str:
    return f"[`{obj.__name__}`]({page_name(obj)}{'#' + anchor if anchor else ''})"


def badge(tier: Tier) -> str:
    return f'<span class="tier tier-{tier.value}">{tier.value}</span>'


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, one line."""
    return " ".join(text.replace("|", "\\|").split())


def type_text(annotation: Any, link: Callable[[type], str] = _link) -> str:
    """A field's type as a reader writes it in YAML: `int`, `NormalizationConfig or null`, `moe`."""
    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return "`null`"
    if origin is typing.Literal:
        return " or ".join(f"`{format_value(arg)}`" for arg in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(arg, link) for arg in typing.get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        return "list of " + (type_text(args[0], link) if args else "values")
    if origin is dict:
        key, value = typing.get_args(annotation) or (str, Any)
        return f"mapping of {type_text(key, link)} to {type_text(value, link)}"
    if isinstance(annotation, type) and issubclass(annotation, (Config, enum.Enum)):
        return link(annotation)
    if annotation is Any:
        return "any value"
    return f"`{getattr(annotation, '__name__', str(annotation))}`"


def _default_text(klass: type[Config], name: str, derived: dict[str, str]) -> str:
    if name in derived:
        return f"derived: {derived[name]}"
    default = klass.field_default(name)
    if default is PydanticUndefined:
        return "*required*"
    return f"`{format_value(default)}`"


def _constraints(klass: type[Config], name: str, info: FieldInfo) -> list[str]:
    found = []
    for item in info.metadata:
        bounds = [f"{_BOUNDS[kind]} {format_value(getattr(item, kind))}" for kind in _BOUNDS if getattr(item, kind, None) is not None]
        if not bounds:
            raise DocsError([f"{klass.__name__}.{name}: cannot document the constraint {item!r}"])
        found += bounds
    text = [", ".join(found)] if found else []
    text += [rule.doc for rule in klass.rules() if name in rule.fields]
    return text


def _enum_values(kind: type[enum.Enum]) -> str:
    return "<br>".join(f"`{member.value}`: {member.description}" for member in kind)  # type: ignore[attr-defined]


def _field_row(klass: type[Config], name: str, derived: dict[str, str]) -> str:
    info = klass.model_fields[name]
    description = info.description or ""
    constraints = _constraints(klass, name, info)
    if constraints:
        description += "<br>**Constraints:** " + " ".join(item if item.endswith(".") else f"{item}." for item in constraints)
    kind = klass.field_enum_class(name)
    if kind is not None:
        description += "<br>**Values:**<br>" + _enum_values(kind)
    cells = [f'<a id="{name}"></a>`{name}`', type_text(info.annotation), _default_text(klass, name, derived), description]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _owners_lines(obj: type, catalog: Catalog) -> list[str]:
    lines = []
    for owner, names in catalog.owners(obj):
        lines.append(f"- {_link(owner)}: " + ", ".join(f"[`{name}`]({page_name(owner)}#{name})" for name in names))
    return lines


def class_page(klass: type[Config], catalog: Catalog) -> str:
    """The reference page of one config class."""
    base = klass.dynamic_base()
    facts = [f"**Module:** `{klass.__module__}`"]
    if klass.__variant_name__ is not None and base is not None:
        default = " (the default)" if base.__default_variant__ == klass.__variant_name__ else ""
        facts.append(f"**Variant of:** {_link(base)} — select with `type: {klass.__variant_name__}`{default}")
    if base is klass:
        choices = ", ".join(
            f"`{name}`{' (default)' if name == klass.__default_variant__ else ''} → {_link(variant)}"
            for name, variant in klass.variants().items()
            if variant in catalog.classes  # the committed pages list the built-in variants, the site the plugins' too
        )
        facts.append(f"**Variants** (chosen by `type:`): {choices}")
    parents = [parent for parent in klass.__mro__[1:] if isinstance(parent, type) and issubclass(parent, Config)]
    facts.append("**Inherits from:** " + ", ".join(_link(p) if p in catalog.classes else f"`{p.__name__}`" for p in parents))
    children = [child for child in catalog.classes if klass in child.__bases__]
    if children and base is not klass:  # a family's base lists its variants above
        facts.append("**Subclasses:** " + ", ".join(_link(child) for child in children))
    lines = [BANNER, "", f"# {klass.__name__}", "", docstring(klass) or "", "", *[f"- {fact}" for fact in facts], ""]
    lines += _fields_section(klass)
    example = example_for(klass, catalog)
    where = ""
    if example.path:
        holder = example.chain[-2]
        where = f" (as `{'.'.join(example.path)}` of {_link(holder) if holder in catalog.classes else holder.__name__})"
    stand_in = example.chain[-1]
    if stand_in is not klass:
        where += f", here as its variant {_link(stand_in)}"
    lines += ["## Example", "", f"A minimal config file that uses `{klass.__name__}`{where}; it validates as it is:", ""]
    lines += ["```yaml", example.yaml.rstrip("\n"), "```", "", "## Used in", ""]
    owners = _owners_lines(klass, catalog)
    if catalog.is_root(klass):
        owners.insert(0, "- the top level of a config file (`fastmoe-cfg validate FILE`)")
    lines += owners or ["- no documented class holds it directly; its subclasses are used instead"]
    return "\n".join(lines) + "\n"


def _fields_section(klass: type[Config]) -> list[str]:
    names = list(klass.model_fields)
    clashes = sorted(set(names) & (_SECTION_ANCHORS | {tier.value for tier in Tier}))
    if clashes:
        raise DocsError([f"{klass.__name__}: field names {clashes} would share an anchor with a heading of its page"])
    if not names:
        return ["This class has no fields.", ""]
    derived = {rule.field: rule.doc for rule in klass.derived_defaults()}
    lines = ["## Fields", "", "By tier, then alphabetically. The [tiers](tiers.md) say who a field is for.", ""]
    for tier in TIER_ORDER:
        in_tier = sorted(name for name in names if klass.field_tier(name) is tier)
        if not in_tier:
            continue
        lines += [f"### {badge(tier)}", "", f"*{tier.description}*", ""]
        lines += ["| Field | Type | Default | Description |", "|---|---|---|---|"]
        lines += [_field_row(klass, name, derived) for name in in_tier]
        lines.append("")
    return lines


def enum_page(kind: type[enum.Enum], catalog: Catalog) -> str:
    lines = [BANNER, "", f"# {kind.__name__}", "", docstring(kind) or "", "", f"- **Module:** `{kind.__module__}`", ""]
    lines += ["## Values", "", "| Value | Meaning |", "|---|---|"]
    lines += [f'| <a id="{member.value}"></a>`{member.value}` | {_cell(member.description)} |' for member in kind]  # type: ignore[attr-defined]
    lines += ["", "## Used in", "", *(_owners_lines(kind, catalog) or ["- no documented field"])]
    return "\n".join(lines) + "\n"


def index_page(catalog: Catalog) -> str:
    lines = [BANNER, "", "# Reference", ""]
    lines += [
        "Every config class and enum, generated from the schemas. A config file is an "
        + " or ".join(_link(root) for root in catalog.roots)
        + "; its `type:` picks the variant. The [tiers](tiers.md) say who each field is for.",
        "",
        "## Variants",
        "",
    ]
    bases = [klass for klass in catalog.classes if klass.dynamic_base() is klass]
    for base in bases:
        lines += [f"### {base.__name__}", "", docstring(base) or "", "", "| `type:` | Class | Description |", "|---|---|---|"]
        for name, variant in base.variants().items():
            if variant in catalog.classes:
                default = " (default)" if name == base.__default_variant__ else ""
                lines.append(f"| `{name}`{default} | {_link(variant)} | {_cell(docstring(variant) or '')} |")
        lines.append("")
    others = [klass for klass in catalog.classes if klass.dynamic_base() is None or (klass.__variant_name__ is None and klass not in bases)]
    lines += ["## Other config classes", "", "| Class | Description |", "|---|---|"]
    lines += [f"| {_link(klass)} | {_cell(docstring(klass) or '')} |" for klass in others]
    lines += ["", "## Enums", "", "| Enum | Description |", "|---|---|"]
    lines += [f"| {_link(kind)} | {_cell(docstring(kind) or '')} |" for kind in catalog.enums]
    return "\n".join(lines) + "\n"


def tiers_page(catalog: Catalog) -> str:
    lines = [BANNER, "", "# Tiers", ""]
    lines += [
        "Every field carries exactly one tier, which says who the field is for. A field declared without a tier "
        "is an error when its class is defined. The tier is shown on every reference page, filters "
        "`fastmoe-cfg explain --tier TIER`, and is exported to the JSON schema as `x-tier`.",
        "",
        "The tiers answer practical questions: two configs that differ only outside `architecture` load the same "
        "checkpoint; changing a `performance` field never changes results, only speed and memory; `expert` fields "
        "are hidden by `explain` unless asked for.",
        "",
    ]
    for tier in TIER_ORDER:
        lines += [f"## {badge(tier)}", "", tier.description, ""]
        holders = [
            (klass, sorted(name for name in klass.model_fields if klass.field_tier(name) is tier))
            for klass in catalog.classes
        ]
        holders = [(klass, names) for klass, names in holders if names]
        if not holders:
            lines += ["No field has this tier yet.", ""]
            continue
        lines += ["| Class | Fields |", "|---|---|"]
        lines += [
            f"| {_link(klass)} | " + ", ".join(f"[`{name}`]({page_name(klass)}#{name})" for name in names) + " |"
            for klass, names in holders
        ]
        lines.append("")
    return "\n".join(lines) + "\n"
