"""What `fastmoe-cfg explain` shows: one row per field of a resolved config.

`explain_rows` is plain data (also the `--format json` output);
`render_explain` draws it with rich, grouped by tier.
"""

from __future__ import annotations

import enum
import textwrap
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from fastmoe_cfg.config.base import TIER_ORDER, Config, Tier, plain_data
from fastmoe_cfg.config.errors import format_number
from fastmoe_cfg.schemas.counts import LayerCounts


@dataclass(frozen=True)
class ExplainRow:
    path: str
    value: Any  # plain JSON data
    display: str
    source: str  # set | default | derived
    tier: str
    description: str
    derived: str | None = None  # how a derived value was computed
    value_description: str | None = None  # what the chosen enum member means
    depth: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["display"], data["depth"]
        return data


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


def _sorted_fields(config: Config) -> list[str]:
    klass = type(config)
    return sorted(klass.__pydantic_fields__, key=lambda name: (TIER_ORDER.index(klass.field_tier(name)), name))


def explain_rows(config: Config, *, tiers: Iterable[str] | None = None, expand: bool = False) -> list[ExplainRow]:
    """Rows sorted by tier then name; nested configs expanded (indented) when `expand`.

    Without `tiers`, the expert tier shows only when `expand` is set. With
    `tiers` and `expand`, nested fields of those tiers show even when their
    parent's tier is not wanted: a flat list of full dotted paths.
    """
    wanted = set(tiers) if tiers else None
    rows: list[ExplainRow] = []
    _collect(config, "", 0, wanted, expand, rows)
    return rows


def hidden_expert_fields(config: Config) -> int:
    """How many top-level expert-tier fields the default view leaves out."""
    klass = type(config)
    return sum(klass.field_tier(name) is Tier.expert for name in klass.__pydantic_fields__)


def explain_rules(config: Config, prefix: str = "") -> list[tuple[str, str]]:
    """(path of the config, rule in words) for every cross-field rule of the config and its nested configs."""
    found = [(prefix.rstrip("."), rule.doc) for rule in type(config).rules()]
    for name, value in config.iter_fields():
        if isinstance(value, Config):
            found += explain_rules(value, f"{prefix}{name}.")
    return found


def _collect(
    config: Config, prefix: str, depth: int, wanted: set[str] | None, expand: bool, rows: list[ExplainRow]
) -> None:
    klass = type(config)
    derived_docs = {derived.field: derived.doc for derived in klass.derived_defaults()}
    for name in _sorted_fields(config):
        tier = klass.field_tier(name)
        value = getattr(config, name)
        shown_here = (wanted is None or tier.value in wanted) and (wanted is not None or expand or tier is not Tier.expert)
        if shown_here:
            source = config.provenance(name)
            display = format_value(value)
            if isinstance(value, Config):
                display = type(value).__name__ if expand else (display if display != "{}" else "(defaults)")
            rows.append(
                ExplainRow(
                    path=prefix + name,
                    value=plain_data(value),
                    display=display,
                    source=source,
                    tier=tier.value,
                    description=klass.__pydantic_fields__[name].description or "",
                    derived=derived_docs.get(name) if source == "derived" else None,
                    value_description=getattr(value, "description", None) if isinstance(value, enum.Enum) else None,
                    depth=depth,
                )
            )
        if expand and isinstance(value, Config) and (shown_here or wanted is not None):
            child_depth = depth + 1 if wanted is None else 0  # a tree, or a flat list when filtered
            _collect(value, f"{prefix}{name}.", child_depth, wanted, expand, rows)


def summary_lines(counts: LayerCounts) -> list[tuple[str, str]]:
    lines = [
        ("total parameters", f"{counts.total_parameters:,}"),
        ("active parameters per token", f"{counts.active_parameters:,}"),
        ("forward FLOPs per token", f"{counts.flops_per_token:,}"),
    ]
    if counts.parameters_per_expert is not None and counts.bytes_per_expert is not None:
        mib = counts.bytes_per_expert / 2**20
        lines += [
            ("router parameters", f"{counts.router_parameters:,}"),
            ("parameters per routed expert", f"{counts.parameters_per_expert:,}"),
            (f"weight memory per expert ({counts.dtype})", f"{counts.bytes_per_expert:,} bytes ({mib:,.1f} MiB)"),
        ]
        if counts.shared_parameters:
            lines.append(("shared expert parameters", f"{counts.shared_parameters:,}"))
    if counts.norm_parameters:
        lines.append(("norm parameters", f"{counts.norm_parameters:,}"))
    return lines


def render_explain(
    config: Config, rows: list[ExplainRow], counts: LayerCounts | None, *, title: str, hidden_expert: int = 0
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"{title}: {type(config).__name__} (type: {getattr(config, 'type', None)})", markup=False)
    table = Table()
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source")
    table.add_column("description", ratio=1, overflow="fold")
    current_tier = None
    for row in rows:
        if row.depth == 0 and row.tier != current_tier:
            if current_tier is not None:
                table.add_section()
            current_tier = row.tier
            table.add_row(f"[bold]{row.tier}[/bold]", "", "", f"[dim]{Tier(row.tier).description}[/dim]")
        description = row.description if row.derived is None else f"{row.description} Derived: {row.derived}"
        if row.value_description:
            description += f" ({row.display}: {row.value_description})"
        name = "  " * (row.depth + 1) + row.path.rsplit(".", 1)[-1] if row.depth else "  " + row.path
        if row.depth:
            description = f"[{row.tier}] {description}"
        table.add_row(name, _escape(row.display), row.source, _escape(description))
    console.print(table)
    rules = explain_rules(config)
    if rules:
        console.print("Rules:")
        for path, doc in rules:
            text = f"{path + ': ' if path else ''}{doc}"
            for line in textwrap.wrap(text, width=max(console.width, 40), initial_indent="  ", subsequent_indent="    "):
                console.print(line, markup=False)
    if hidden_expert:
        console.print(f"{hidden_expert} expert-tier field(s) not shown: --all or --tier expert shows them.")
    if counts is None:
        console.print("Pass --hidden-size N to see parameter counts, FLOPs per token and memory per expert.")
        return
    console.print(f"Per layer, hidden_size={counts.hidden_size}:")
    summary = Table(show_header=False)
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    for label, value in summary_lines(counts):
        summary.add_row(label, value)
    console.print(summary)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
