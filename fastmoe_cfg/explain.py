"""What `fastmoe-cfg explain` shows: one row per field of a resolved config, as plain data.

`explain_rows` is also the `--format json` output; the CLI draws it (`cli.py`).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from fastmoe_cfg.config.base import Config, Tier, format_value, plain_data
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
    origin: str | None = None  # where a set value was written, when not in the explained file (a parent, --set)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["display"], data["depth"]
        if data["origin"] is None:
            del data["origin"]
        return data

    @property
    def source_text(self) -> str:
        """`set`, `default`, `derived`, or `set in base.yaml:3:1` for a value from elsewhere."""
        return f"{self.source} in {self.origin}" if self.origin else self.source


def _sorted_fields(config: Config) -> list[str]:
    return [name for _, names in type(config).fields_by_tier() for name in names]


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
    return sum(klass.field_tier(name) is Tier.expert for name in klass.model_fields)


def explain_rules(config: Config, prefix: str = "") -> list[tuple[str, str]]:
    """(path of the config, rule in words) for the cross-field rules that constrain a field set in this config
    (a rule's first field is the one it constrains), in the config and its nested configs."""
    found = [(prefix.rstrip("."), rule.doc) for rule in type(config).rules() if config.provenance(rule.fields[0]) == "set"]
    for name, value in config.iter_fields():
        if isinstance(value, Config):
            found += explain_rules(value, f"{prefix}{name}.")
    return found


def megatron_equivalent_lines(config: Config, prefix: str = "") -> list[str]:
    """Megatron-LM's `moe_aux_loss_coeff` for each load-balancing loss this config applies (none: no line).

    Megatron-LM (like NeMo Automodel and KempnerForge; MegaBlocks also divides by the number of layers)
    divides the Switch loss E · Σ_e f_e · P_e by k (its f_e sums to 1, ours to k), so its coefficient is
    ours × experts_per_token. Multiplied as decimals, so that 0.01 × 3 reads 0.03. A nested MoE config
    (`routed` of a hybrid) gets its own line.
    """
    from decimal import Decimal

    lines = []
    applied_losses = getattr(config, "applied_losses", None)
    if applied_losses is not None and "load_balancing_loss" in applied_losses():
        coefficient, k = config.auxiliary_loss_coefficient, config.experts_per_token
        megatron = float(Decimal(repr(coefficient)) * k)
        lines.append(
            f"Megatron-LM equivalent: moe_aux_loss_coeff {format_value(megatron)} = {prefix}auxiliary_loss_coefficient "
            f"{format_value(coefficient)} × experts_per_token {k} (Megatron-LM divides the load-balancing loss by k)."
        )
    for name, value in config.iter_fields():
        if isinstance(value, Config):
            lines += megatron_equivalent_lines(value, f"{prefix}{name}.")
    return lines


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
                    description=klass.field_description(name),
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
    if counts.dense_parameters is not None:
        lines.append(("dense branch parameters (hybrid_moe)", f"{counts.dense_parameters:,}"))
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


# ------------------------------------------------------------------------------------------ stacks
MAP_GROUP = 10  # letters per group in a stack's layer map


def stack_map(stack: Any) -> str:
    """One letter per layer (D dense, M MoE), in groups of 10 from layer 0: `DDDMMMMMMM MMMMMMMMMM M`."""
    kinds = stack.layer_kinds()
    return " ".join(kinds[start : start + MAP_GROUP] for start in range(0, len(kinds), MAP_GROUP))


def stack_heading(stack: Any) -> str:
    kinds = stack.layer_kinds()
    parts = [f"{count} {name}" for count, name in ((kinds.count("D"), "dense"), (kinds.count("M"), "MoE")) if count]
    return f"{stack.layers} layers: {', '.join(parts)}"


def wrap_items(items: list[str], width: int, indent: str) -> list[str]:
    """`items` joined by ", " in lines of at most `width` columns, breaking between items only."""
    lines: list[str] = []
    current = indent
    for index, item in enumerate(items):
        text = item + ("," if index < len(items) - 1 else "")
        if current.strip() and len(current) + 1 + len(text) > width:
            lines.append(current)
            current = indent
        current = f"{current} {text}" if current.strip() else current + text
    if current.strip():
        lines.append(current)
    return lines


def stack_summary_lines(counts: Any) -> list[tuple[str, str]]:
    """The whole model's MLP figures (a `StackCounts`)."""
    return [
        ("total parameters", f"{counts.total_parameters:,}"),
        ("active parameters per token", f"{counts.active_parameters:,}"),
        ("forward FLOPs per token", f"{counts.flops_per_token:,}"),
    ]


def where_text(source: Any, path: tuple[Any, ...]) -> str | None:
    """Where `path` (inside the loaded config) was written: `file:line:col`, or the `--set` that wrote it."""
    for length in range(len(path), 0, -1):
        written = source.overrides.get(path[:length])
        if written is not None:
            return f"--set {written[0]}"
    found = source.written_at(path)
    if found is None:
        return None
    file, position = found
    return f"{file}:{position.line}:{position.column}"


def layer_path(stack: Any, layer: int, path: tuple[Any, ...]) -> tuple[Any, ...]:
    """The path in a stack's file that wrote `path` of layer `layer`'s block: the last override of that layer
    that writes it, else the layer's base block (mlp or dense_mlp)."""
    from fastmoe_cfg.schemas.stack import parse_layers, written_prefix

    for number in reversed(range(len(stack.overrides))):
        override = stack.overrides[number]
        if layer not in parse_layers(override.layers, stack.layers):
            continue
        written = written_prefix(override.set, path)
        if written:
            return ("overrides", number, "set", *written)
    base = "mlp" if layer in set(stack.moe_layer_indices()) else "dense_mlp"
    return (base, *path)


def diff_stacks(a: Any, b: Any, *, where_a: Any, where_b: Any, count_where: tuple[Any, Any] = (None, None)) -> list[Any]:
    """The differences of two stacks (or a stack and a list of blocks), layer by layer, equal differences of
    neighbouring layers merged into one with their layers (`3-60`).

    `a` and `b` are sequences of blocks; `where_a(layer, path)` and `where_b(layer, path)` say where a set value
    was written.
    """
    from dataclasses import replace

    from fastmoe_cfg.config.base import Tier
    from fastmoe_cfg.config.diff import Difference, Side, diff_configs
    from fastmoe_cfg.schemas.stack import format_layers

    merged: dict[tuple[Any, ...], tuple[Any, list[int]]] = {}
    differences: list[Any] = []
    if len(a) != len(b):
        differences.append(
            Difference(("layers",), Tier.architecture, Side(len(a), "set", count_where[0]), Side(len(b), "set", count_where[1]))
        )
    for layer in range(min(len(a), len(b))):
        found = diff_configs(
            a[layer], b[layer], where_a=lambda path, layer=layer: where_a(layer, path), where_b=lambda path, layer=layer: where_b(layer, path)
        )
        for difference in found:
            key = (difference.path, repr(difference.a), repr(difference.b))
            if key in merged:
                merged[key][1].append(layer)
            else:
                merged[key] = (difference, [layer])
    for difference, layers in merged.values():
        differences.append(replace(difference, layers=format_layers(layers)))
    return differences
