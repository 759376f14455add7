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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["display"], data["depth"]
        return data


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
