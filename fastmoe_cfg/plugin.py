"""The public API for authors of MLP variants: every name a plugin may import, in one `__all__`.

A plugin imports from this module only (`from fastmoe_cfg.plugin import ...`); every other
module of fastmoe_cfg is private to it and may change between releases. The guide "Writing a
variant" lists these names and walks through the example plugin that uses them,
`examples/plugins/fastmoe-expert-choice`.

Config side (no torch):
    Config, field, Tier, Rule, Derived   a config class, its fields (each with a tier and a description),
                                         its cross-field rules and its derived defaults
    MLPBaseConfig                        the base of `type:`; `@MLPBaseConfig.register("name")` adds a variant
    ActivationType, RouterScoreFunction  enums a variant's fields may take
    LinearConfig                         a linear layer's weight (its initialization, lr_scale), for `Linear`
    LayerCounts, DTYPE_BYTES,            the counts hook: a variant's config defines
    norm_parameters                      `counts(self, hidden_size: int, dtype: str) -> LayerCounts`, which
                                         `explain --hidden-size` shows (without it: "counts not provided by ...")

Layer side (torch; imported on first use, so that importing this module never imports torch):
    as_tokens                            [tokens, H] or [batch, seq, H] and token_mask -> `Tokens` (x_TH,
                                         mask_T with masked rows zeroed, and `restore` for the output)
    Linear, build_normalization          parameters that initialise themselves (`reset_parameters()`)
    normalization_lr_scales              a norm's learning-rate scales by parameter name, for `lr_scales`
    upcast, scores_of, select_experts,   the routing functions: float32 at least, softmax | sigmoid scores,
    expert_capacity                      top-k (group-limited), ⌈capacity_factor · T · K / E⌉ in integers
    PermutePlan, permute, unpermute      rows sorted by expert, and back to tokens
    GroupedExperts                       the experts on a plan's rows: weight_n · expert_{e_n}(x_n), sentinel rows zero
    inject_loss, z_loss                  an auxiliary loss that reaches the router in backward; the router z-loss
    routing_statistics                   `layer.stats` of a top-k router (tokens_per_expert, dropped_tokens, ...)

Conventions of a layer (read by the training tools): `forward(x, token_mask=None)` returns x's shape,
masked rows exactly zero; `reset_parameters()` draws every parameter again in constructor order
(a layer built on the meta device, moved with `to_empty()` and reset equals a direct build under the
same seed); `lr_scales` maps parameter names to learning-rate scales (`parameter_groups`); `stats`
holds detached values of the last forward.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fastmoe_cfg.config.base import Config, Derived, Rule, Tier, field
from fastmoe_cfg.schemas.counts import DTYPE_BYTES, LayerCounts, norm_parameters
from fastmoe_cfg.schemas.enums import ActivationType, RouterScoreFunction
from fastmoe_cfg.schemas.linear import LinearConfig
from fastmoe_cfg.schemas.mlp import MLPBaseConfig

if TYPE_CHECKING:  # the layer side, for type checkers and linters; at run time `__getattr__` imports it on first use
    from fastmoe_cfg.layers.linear import Linear
    from fastmoe_cfg.layers.moe.experts import GroupedExperts
    from fastmoe_cfg.layers.moe.losses import inject_loss, routing_statistics, z_loss
    from fastmoe_cfg.layers.moe.permute import PermutePlan, permute, unpermute
    from fastmoe_cfg.layers.moe.router import expert_capacity, scores_of, select_experts, upcast
    from fastmoe_cfg.layers.normalization import build_normalization, normalization_lr_scales
    from fastmoe_cfg.layers.tokens import as_tokens

__all__ = [
    "DTYPE_BYTES",
    "ActivationType",
    "Config",
    "Derived",
    "GroupedExperts",
    "LayerCounts",
    "Linear",
    "LinearConfig",
    "MLPBaseConfig",
    "PermutePlan",
    "RouterScoreFunction",
    "Rule",
    "Tier",
    "as_tokens",
    "build_normalization",
    "expert_capacity",
    "field",
    "inject_loss",
    "norm_parameters",
    "normalization_lr_scales",
    "permute",
    "routing_statistics",
    "scores_of",
    "select_experts",
    "unpermute",
    "upcast",
    "z_loss",
]

_LAZY = {  # name -> the private module that defines it
    "GroupedExperts": "fastmoe_cfg.layers.moe.experts",
    "Linear": "fastmoe_cfg.layers.linear",
    "PermutePlan": "fastmoe_cfg.layers.moe.permute",
    "as_tokens": "fastmoe_cfg.layers.tokens",
    "build_normalization": "fastmoe_cfg.layers.normalization",
    "expert_capacity": "fastmoe_cfg.layers.moe.router",
    "inject_loss": "fastmoe_cfg.layers.moe.losses",
    "normalization_lr_scales": "fastmoe_cfg.layers.normalization",
    "permute": "fastmoe_cfg.layers.moe.permute",
    "routing_statistics": "fastmoe_cfg.layers.moe.losses",
    "scores_of": "fastmoe_cfg.layers.moe.router",
    "select_experts": "fastmoe_cfg.layers.moe.router",
    "unpermute": "fastmoe_cfg.layers.moe.permute",
    "upcast": "fastmoe_cfg.layers.moe.router",
    "z_loss": "fastmoe_cfg.layers.moe.losses",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r} (the public names are in its __all__)")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
