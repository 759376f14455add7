"""Parameter, FLOP and memory counts computed from a config alone (no torch).

Conventions: FLOPs are 2 × the multiply-adds of the matmuls of one token's
forward pass (router, experts, shared experts, shared expert gate); norms,
activations and the weighted sum are not counted. "Active" parameters are
those one token touches: router, router scales, its `experts_per_token`
routed experts, the shared experts and their gate, and the norms, biases
included (the router bias too).

A hybrid_moe layer is the sum of its branches' counts (the dense branch is active for every token)
plus its own pre_norm and post_norm; `dense_parameters` is its dense branch, norms included.

The shared experts are held as one dense MLP of width
`shared_experts · intermediate_size`, or `shared_expert_intermediate_size` (DESIGN.md, layers), so together they
have one `layer_2` bias of size hidden, where separate experts would have one
each. Per-expert figures are None for a dense MLP.

A variant from a plugin gives its own counts: its config defines
`counts(self, hidden_size: int, dtype: str) -> LayerCounts` (the guide "Writing a variant");
without it `count_layer` raises `CountsNotProvided`, which `explain` prints as one line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from fastmoe_cfg.schemas.hybrid import HybridMoEMLPConfig
from fastmoe_cfg.schemas.mlp import MLPBaseConfig, MoEMLPConfig, TwoLayerMLPConfig
from fastmoe_cfg.schemas.normalization import LayerNormalizationConfig, NormalizationConfig, RMSNormalizationConfig
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


@dataclass(frozen=True)
class LayerCounts:
    hidden_size: int
    total_parameters: int
    active_parameters: int
    flops_per_token: int
    norm_parameters: int = 0
    dtype: str = "bf16"
    router_parameters: int | None = None
    parameters_per_expert: int | None = None
    shared_parameters: int | None = None
    bytes_per_expert: int | None = None
    dense_parameters: int | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class CountsNotProvided(Exception):
    """A variant whose config defines no `counts(hidden_size, dtype)` method (a plugin's; the built-ins all count)."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        super().__init__(f"counts not provided by {variant} (its config defines no counts(hidden_size, dtype) method)")


def norm_parameters(norm: NormalizationConfig | None, hidden_size: int) -> int:
    if not isinstance(norm, (LayerNormalizationConfig, RMSNormalizationConfig)):
        return 0
    weight = hidden_size if norm.weight.enabled is not False else 0
    return weight + (hidden_size if isinstance(norm, LayerNormalizationConfig) else 0)


def _enabled(parameter: OptionalParameterConfig) -> bool:
    return bool(parameter.enabled)


def mlp_parameters(config: TwoLayerMLPConfig, hidden_size: int, intermediate_size: int) -> int:
    """Weights and biases of one MLP of the given width (layer_1 doubles its rows when gated)."""
    rows_1 = intermediate_size * (2 if config.gated else 1)
    count = hidden_size * rows_1 + intermediate_size * hidden_size
    count += rows_1 if config.has_bias(config.layer_1) else 0
    count += hidden_size if config.has_bias(config.layer_2) else 0
    return count


def mlp_flops(config: TwoLayerMLPConfig, hidden_size: int, intermediate_size: int) -> int:
    rows_1 = intermediate_size * (2 if config.gated else 1)
    return 2 * (hidden_size * rows_1 + intermediate_size * hidden_size)


def count_layer(config: MLPBaseConfig, hidden_size: int, dtype: str = "bf16") -> LayerCounts:
    """The counts of one MLP block: the built-in formulas, or the `counts` hook of a plugin's variant.

    Raises CountsNotProvided for a variant defined outside fastmoe_cfg without the hook (its
    fields may change the counts: the built-in formulas would be wrong, not merely incomplete).
    """
    hook = getattr(config, "counts", None)
    if callable(hook):
        return hook(hidden_size, dtype)
    if not type(config).__module__.startswith("fastmoe_cfg."):
        raise CountsNotProvided(getattr(config, "type", None) or type(config).__name__)
    norms = norm_parameters(config.pre_norm, hidden_size) + norm_parameters(config.post_norm, hidden_size)
    if isinstance(config, HybridMoEMLPConfig):
        dense, routed = count_layer(config.dense, hidden_size, dtype), count_layer(config.routed, hidden_size, dtype)
        return replace(
            routed,
            total_parameters=dense.total_parameters + routed.total_parameters + norms,
            active_parameters=dense.active_parameters + routed.active_parameters + norms,
            flops_per_token=dense.flops_per_token + routed.flops_per_token,
            norm_parameters=dense.norm_parameters + routed.norm_parameters + norms,
            dense_parameters=dense.total_parameters,
        )
    if not isinstance(config, MoEMLPConfig):
        dense = mlp_parameters(config, hidden_size, config.intermediate_size)
        return LayerCounts(
            hidden_size=hidden_size,
            total_parameters=dense + norms,
            active_parameters=dense + norms,
            flops_per_token=mlp_flops(config, hidden_size, config.intermediate_size),
            norm_parameters=norms,
            dtype=dtype,
        )
    routed = config.experts - config.shared_experts
    router = hidden_size * routed
    router += norm_parameters(config.router_normalization, hidden_size)
    router += hidden_size if _enabled(config.router_scale) else 0
    router += routed if _enabled(config.router_per_expert_scale) else 0
    router += routed if _enabled(config.router_bias) else 0
    per_expert = mlp_parameters(config, hidden_size, config.intermediate_size)
    shared_width = config.shared_intermediate_size()
    shared = mlp_parameters(config, hidden_size, shared_width) if config.shared_experts else 0
    shared += hidden_size if _enabled(config.shared_expert_gate) else 0
    flops = 2 * hidden_size * routed + config.experts_per_token * mlp_flops(config, hidden_size, config.intermediate_size)
    flops += mlp_flops(config, hidden_size, shared_width) if config.shared_experts else 0
    flops += 2 * hidden_size if _enabled(config.shared_expert_gate) else 0
    return LayerCounts(
        hidden_size=hidden_size,
        total_parameters=router + routed * per_expert + shared + norms,
        active_parameters=router + config.experts_per_token * per_expert + shared + norms,
        flops_per_token=flops,
        router_parameters=router,
        parameters_per_expert=per_expert,
        shared_parameters=shared,
        norm_parameters=norms,
        dtype=dtype,
        bytes_per_expert=per_expert * DTYPE_BYTES[dtype],
    )
