"""`fastmoe-cfg init`: a commented starter config, generated from the schemas.

Every top-level field appears once, in tier order: the starter values are
written out; the others are commented out with their default and
description, so the file validates as it is and documents what can change.
"""

from __future__ import annotations

import textwrap

from fastmoe_cfg.config.base import TIER_ORDER, Config
from fastmoe_cfg.config.base import format_value
from fastmoe_cfg.schemas import FORMAT_VERSION, MLPBaseConfig

# Values a new config usually starts from (a Mixtral-like layer).
_STARTER_VALUES = {
    "moe": {"experts": 8, "experts_per_token": 2, "gated": True, "add_linear_biases": False, "intermediate_size": 4096},
    "mlp": {"gated": True, "add_linear_biases": False, "intermediate_size": 11008},
}


def starter_yaml(variant: str) -> str:
    klass: type[Config] = MLPBaseConfig.variants()[variant]
    values = {"type": variant, "format_version": FORMAT_VERSION, **_STARTER_VALUES.get(variant, {})}
    defaults = klass()
    lines = [
        f"# A starter fastmoe_cfg config ({klass.__name__}, type: {variant}).",
        "# Check it with `fastmoe-cfg validate FILE`; see every field with `fastmoe-cfg explain FILE --all`.",
        "# Commented-out lines show the defaults.",
    ]
    derived = {rule.field: rule.doc for rule in klass.derived_defaults()}
    fields = sorted(klass.model_fields, key=lambda name: (TIER_ORDER.index(klass.field_tier(name)), name))
    current_tier = None
    for name in fields:
        tier = klass.field_tier(name)
        if tier != current_tier:
            current_tier = tier
            lines += ["", f"# --- {tier.value}: {tier.description}"]
        description = klass.model_fields[name].description or ""
        lines += ["# " + line for line in textwrap.wrap(description, 96)]
        if name in values:
            lines.append(f"{name}: {format_value(values[name])}")
        elif name in derived:
            lines.append(f"# {name}: null  # derived: {derived[name]}")
        else:
            lines.append(f"# {name}: {format_value(getattr(defaults, name))}")
    return "\n".join(lines) + "\n"
