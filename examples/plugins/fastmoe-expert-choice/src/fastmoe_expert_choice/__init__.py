"""`type: expert_choice`: expert-choice routing (Zhou et al., 2022), a fastmoe_cfg MLP variant.

The config lives here and imports no torch (validate, explain, schema and docs work without it);
the layer is in `layer.py`, imported by `build()`. Importing this module registers the variant:
fastmoe_cfg does so through the entry point `fastmoe_cfg.variants` in pyproject.toml.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from fastmoe_cfg.plugin import DTYPE_BYTES, ActivationType, LayerCounts, MLPBaseConfig, Rule, field, norm_parameters

__all__ = ["ExpertChoiceMLPConfig"]

TYPE_DESCRIPTION = "The MLP variant: expert_choice, each expert chooses its tokens (the fastmoe-expert-choice plugin)."


@MLPBaseConfig.register("expert_choice")
class ExpertChoiceMLPConfig(MLPBaseConfig):
    """Expert-choice MoE (Zhou et al., 2022): each expert takes the tokens it scores highest, up to its capacity c = ⌈capacity_factor · T · experts_per_token / experts⌉ of the T tokens of a forward; a token's output is the score-weighted sum of the experts that chose it (zero when none did)."""

    __rules__ = (
        Rule(
            fields=("experts_per_token", "experts"),
            check=lambda experts_per_token, experts: experts_per_token <= experts,
            message=lambda experts_per_token, experts: f"must satisfy experts_per_token <= experts ({experts_per_token} > {experts})",
            doc="A token is chosen by experts_per_token experts on average, at most by all of them: experts_per_token <= experts.",
        ),
        Rule(
            fields=("activation",),
            check=lambda activation: activation != ActivationType.gpt_oss_glu,
            message=lambda activation: "gpt_oss_glu is not available in expert_choice (it has no activation_limit): use silu, gelu or another",
            doc="activation gpt_oss_glu is refused (expert_choice has no activation_limit).",
        ),
    )

    type: Literal["expert_choice"] = field("expert_choice", tier="core", desc=TYPE_DESCRIPTION)
    experts: int = field(8, tier="core", ge=1, desc="E: the experts; each has its own two-layer MLP.")
    experts_per_token: int = field(
        2, tier="core", ge=1, desc="k: the experts a token gets on average (any one token gets 0 to experts of them); sets the capacity c = ⌈capacity_factor · T · k / E⌉."
    )
    activation: ActivationType = field(ActivationType.silu, tier="architecture", desc="Activation of each expert's hidden layer (the gate's activation when gated).")
    capacity_factor: float = field(
        1.0, tier="architecture", gt=0, desc="Multiplies each expert's capacity c = ⌈capacity_factor · T · k / E⌉ (at most T); Zhou et al. use 2 with k = 1 (EC-CF2)."
    )
    gated: bool = field(True, tier="architecture", desc="Gated linear unit: each expert's first layer gives a gate and an up projection, hidden = activation(gate) · up.")
    intermediate_size: int = field(4096, tier="architecture", ge=1, desc="I: the hidden size of each expert.")
    z_loss_coefficient: float = field(
        0.0, tier="feature", ge=0, desc="Training only: the router z-loss mean_t logsumexp(logits_t)² (ST-MoE) times this reaches the router in backward. 0: off."
    )

    def build(self, hidden_size: int, *, device=None, dtype=None, ep_mesh=None, dp_mesh=None):
        """The `ExpertChoiceMLP` this config describes (torch is imported here, never at module level)."""
        if ep_mesh is not None or dp_mesh is not None:
            raise ValueError("expert_choice does not support expert parallelism (ep_mesh, dp_mesh)")
        from fastmoe_expert_choice.layer import ExpertChoiceMLP

        return ExpertChoiceMLP(self, hidden_size, device=device, dtype=dtype)

    def counts(self, hidden_size: int, dtype: str = "bf16") -> LayerCounts:
        """The counts hook of `explain`: a token reaches capacity_factor · k experts on average (before the cap c <= T)."""
        rows_1 = self.intermediate_size * (2 if self.gated else 1)
        per_expert = hidden_size * rows_1 + self.intermediate_size * hidden_size  # the experts have no biases
        router = hidden_size * self.experts
        norms = norm_parameters(self.pre_norm, hidden_size) + norm_parameters(self.post_norm, hidden_size)
        reached = min(Fraction(repr(self.capacity_factor)) * self.experts_per_token, self.experts)
        return LayerCounts(
            hidden_size=hidden_size,
            total_parameters=router + self.experts * per_expert + norms,
            active_parameters=round(router + reached * per_expert + norms),
            flops_per_token=round(2 * router + reached * 2 * per_expert),
            norm_parameters=norms,
            dtype=dtype,
            router_parameters=router,
            parameters_per_expert=per_expert,
            bytes_per_expert=per_expert * DTYPE_BYTES[dtype],
        )
