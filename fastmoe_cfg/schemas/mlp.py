"""The MLP configs: `type: mlp` (dense, default) and `type: moe` (mixture of experts)."""

from typing import ClassVar

from fastmoe_cfg.config.base import Config, Derived, Rule, field
from fastmoe_cfg.schemas.enums import ActivationType, MLPRecomputeLevel, MoEImplementation, RoutingType
from fastmoe_cfg.schemas.linear import AffineLinearConfig, LinearConfig
from fastmoe_cfg.schemas.normalization import NormalizationConfig
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig

FORMAT_VERSION = 1


class MLPBaseConfig(Config):
    """The MLP block of a transformer layer; `type:` selects dense (`mlp`, default) or mixture of experts (`moe`)."""

    __default_variant__: ClassVar[str] = "mlp"
    __derived__ = (
        Derived(
            field="activation",
            depends_on=("gated",),
            compute=lambda gated: ActivationType.silu if gated else ActivationType.gelu,
            doc="silu if gated, else gelu.",
        ),
    )
    # Names from Fast-LLM's older configs and from Hugging Face, pointing at ours.
    __renamed__ = {
        "ffn_hidden_size": "intermediate_size",
        "moe_intermediate_size": "intermediate_size",
        "hidden_act": "activation",
        "gated_linear_unit": "gated",
        "mlp_recompute_level": "recompute_level",
    }

    type: str | None = field(None, tier="core", desc="The MLP variant: mlp (dense, default) or moe (mixture of experts).")
    format_version: int | None = field(
        None, tier="core", ge=1, le=FORMAT_VERSION, desc=f"Version of this config format (only {FORMAT_VERSION} exists). None: the current one."
    )
    activation: ActivationType | None = field(None, tier="core", desc="Activation of the hidden layer (the gate's activation when gated).")
    add_linear_biases: bool = field(
        True, tier="architecture", desc="Biases on layer_1 and layer_2; each layer's bias.enabled overrides it."
    )
    gated: bool = field(
        False, tier="architecture", desc="Gated linear unit: layer_1 produces a gate and an up projection, hidden = activation(gate) · up."
    )
    intermediate_size: int = field(4096, tier="architecture", ge=1, desc="Hidden size of the MLP (of each expert for moe).")
    layer_1: AffineLinearConfig = field(
        default_factory=AffineLinearConfig, tier="architecture", desc="First linear: hidden -> intermediate (2 × intermediate when gated, gate rows first). Default initialization: normal, std hidden_size^-0.5; bias 0."
    )
    layer_2: AffineLinearConfig = field(
        default_factory=AffineLinearConfig, tier="architecture", desc="Second linear: intermediate -> hidden. Default initialization: normal, std intermediate_size^-0.5; bias 0."
    )
    pre_norm: NormalizationConfig | None = field(
        None, tier="architecture", desc="Normalization of the MLP input (for moe: of the experts' input only; the router sees the raw input). None: no normalization."
    )
    post_norm: NormalizationConfig | None = field(
        None, tier="architecture", desc="Normalization of the MLP output (for moe: of the combined output). None: no normalization."
    )
    lr_scale: float | None = field(
        None, tier="feature", ge=0, desc="Multiplies the learning rate of every parameter of the MLP, on top of the scales of its sub-layers. None: 1."
    )
    recompute_level: MLPRecomputeLevel = field(
        MLPRecomputeLevel.none, tier="performance", desc="What backward recomputes instead of storing."
    )

    def build(self, hidden_size: int, *, device=None, dtype=None):
        """The torch module this config describes (`fastmoe_cfg.layers`, imported here: configs never need torch).

        `hidden_size` is the model's width; `device` and `dtype` go to every parameter.
        The module's `forward(x, token_mask=None)` takes [tokens, hidden] or [batch, seq, hidden].
        """
        from fastmoe_cfg.layers import build_layer

        return build_layer(self, hidden_size, device=device, dtype=dtype)


@MLPBaseConfig.register("mlp")
class MLPConfig(MLPBaseConfig):
    """A dense MLP: layer_2(activation(layer_1(x)))."""


@MLPBaseConfig.register("moe")
class MoEMLPConfig(MLPBaseConfig):
    """A mixture-of-experts MLP: a router sends each token to `experts_per_token` of the routed experts and sums their outputs, weighted by the routing scores; shared experts process every token."""

    __rules__ = (
        Rule(
            fields=("experts_per_token", "shared_experts", "experts"),
            check=lambda experts_per_token, shared_experts, experts: experts_per_token + shared_experts <= experts,
            message=lambda experts_per_token, shared_experts, experts: (
                f"must satisfy experts_per_token + shared_experts <= experts ({experts_per_token} + {shared_experts} > {experts})"
            ),
            doc="Each token picks experts_per_token of the experts - shared_experts routed experts: experts_per_token + shared_experts <= experts.",
        ),
    )
    __renamed__ = {
        "num_experts": "experts",
        "num_local_experts": "experts",
        "n_routed_experts": "experts",
        "num_experts_per_tok": "experts_per_token",
        "num_experts_per_token": "experts_per_token",
        "top_k": "experts_per_token",
        "num_shared_experts": "shared_experts",
        "n_shared_experts": "shared_experts",
        "router_aux_loss_coef": "auxiliary_loss_coefficient",
        "router_jitter_noise": "jitter_eps",
        "expert_z_loss_coefficient": "z_loss_coefficient",
        "router_z_loss_coef": "z_loss_coefficient",
    }

    experts: int = field(2, tier="architecture", ge=1, desc="Number of experts, shared experts included.")
    experts_per_token: int = field(1, tier="architecture", ge=1, desc="Routed experts active per token (the k of top-k).")
    shared_experts: int = field(
        0, tier="architecture", ge=0, desc="Experts applied to every token with weight 1, counted in `experts`; the router scores the other experts - shared_experts."
    )
    routing: RoutingType = field(RoutingType.aux_loss, tier="architecture", desc="How tokens are assigned to experts.")
    router_normalization: NormalizationConfig | None = field(
        None, tier="architecture", desc="Normalization of the router input only (first step of the router). None: none."
    )
    router_scale: OptionalParameterConfig = field(
        default_factory=OptionalParameterConfig, tier="architecture", desc="Learnable per-feature scale on the router input, after router_normalization. Off unless enabled."
    )
    router_input_scale: float = field(
        1.0, tier="architecture", gt=0, desc="Constant multiplying the router input after normalization and router_scale (hidden_size^-0.5 for Gemma-style routers)."
    )
    router_per_expert_scale: OptionalParameterConfig = field(
        default_factory=OptionalParameterConfig, tier="architecture", desc="Learnable per-expert factor on the routing weights, after top-k. Off unless enabled."
    )
    router: LinearConfig = field(
        default_factory=LinearConfig, tier="feature", desc="The router linear: hidden -> experts - shared_experts logits (default initialization: normal, std hidden_size^-0.5)."
    )
    auxiliary_loss_coefficient: float = field(
        0.01, tier="feature", ge=0, desc="Scale of the load-balancing loss coefficient · E_r · Σ_e f_e · P_e (aux_loss routing)."
    )
    z_loss_coefficient: float = field(
        0.0, tier="feature", ge=0, desc="Scale of the router z-loss mean_t(logsumexp(logits_t)²), computed before jitter."
    )
    jitter_eps: float = field(
        0.0, tier="feature", ge=0, lt=1, desc="In training, the router logits are multiplied by uniform(1 - jitter_eps, 1 + jitter_eps) noise, after the z-loss. 0: off."
    )
    dropless_dynamic_shape: bool = field(
        False, tier="expert", desc="Dropless implementation: size buffers by the actual token counts instead of the worst case (less memory, a host sync)."
    )
    implementation: MoEImplementation = field(MoEImplementation.auto, tier="expert", desc="How the experts are executed.")
