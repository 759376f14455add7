"""The MLP configs: `type: mlp` (dense, default) and `type: moe` (mixture of experts)."""

from typing import ClassVar, Literal

from fastmoe_cfg.config.base import Config, Derived, Renamed, Rule, field, format_value
from fastmoe_cfg.schemas.enums import (
    ActivationType,
    BiasUpdateRule,
    BiasUpdateSchedule,
    CorrectionBiasTarget,
    DroplessKernel,
    DropPolicy,
    ExpertGroupScore,
    JitterDistribution,
    JitterTarget,
    MLPRecomputeLevel,
    MoEImplementation,
    RouterDtype,
    RouterScoreFunction,
    RoutingType,
)
from fastmoe_cfg.schemas.linear import AffineLinearConfig, LinearConfig
from fastmoe_cfg.schemas.normalization import NormalizationConfig
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig

FORMAT_VERSION = 2  # what each version changed: fastmoe_cfg/schemas/versions.py
GPT_OSS_LIMIT = 7.0
GPT_OSS_ALPHA = 1.702  # the sigmoid-GELU approximation constant of gpt_oss_glu (fixed, as in HF's GptOssExperts)
BIAS_UPDATE_RATE = 1e-3  # DeepSeek-V3's γ
BIAS_UPDATE_EMA_DECAY = 0.99  # KempnerForge's SigmoidTopKRouter ema_decay
AUXILIARY_LOSS_COEFFICIENT = 0.01  # Fast-LLM's default
TYPE_DESCRIPTION = "The MLP variant: mlp (dense, default), moe (mixture of experts) or hybrid_moe (a dense MLP and routed experts, summed)."


def only_with(name: str, condition_fields: tuple[str, ...], condition, condition_text: str) -> Rule:
    """A rule: `name` has a value (is not None) only when `condition(*condition_fields)` holds."""
    return Rule(
        fields=(name, *condition_fields),
        check=lambda **values: (values[name] is None) or bool(condition(*(values[field] for field in condition_fields))),
        message=lambda **values: f"only applies {condition_text} (remove it, or set it to null)",
        doc=f"{name} only applies {condition_text}.",
    )


def _shared_experts_hint(experts: int, shared_experts: int, expert_groups: int) -> str:
    """With shared experts, say that `experts` counts them, and which value of `experts` would divide."""
    if not shared_experts:
        return ""
    routed = -(-(experts - shared_experts) // expert_groups) * expert_groups
    shared = f"{shared_experts} shared expert" + ("s" if shared_experts > 1 else "")
    return f"; experts counts the {shared} too: experts: {routed + shared_experts} gives {routed} routed experts"


def _positive(value) -> bool:
    """For a derived default: whether a raw, not yet validated value is a number above 0."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def routing_default(name: str, owner: RoutingType, value, shown: str, source: str | None = None) -> Derived:
    """A derived default: `value` under routing `owner`, else none (a setting of that routing only)."""
    return Derived(
        field=name,
        depends_on=("routing",),
        compute=lambda routing: value if routing == owner else None,
        doc=f"{shown} with routing {owner.value}{f' ({source})' if source else ''}, else none.",
    )


def ignored_by_balanced(name: str, neutral, shown: str) -> Rule:
    """A rule: `name` keeps its neutral value under routing balanced, which ignores the router's scores."""
    return Rule(
        fields=(name, "routing"),
        check=lambda **values: values["routing"] != RoutingType.balanced or values[name] == neutral,
        message=lambda **values: (
            f"{name} {format_value(values[name])} has no effect with routing: balanced, which ignores the router's scores "
            f"(remove it, or use another routing)"
        ),
        doc=f"{name} other than {shown} has no effect with routing: balanced.",
    )


class MLPBaseConfig(Config):
    """The MLP block of a transformer layer; `type:` selects dense (`mlp`, default), mixture of experts (`moe`) or both summed (`hybrid_moe`)."""

    __default_variant__: ClassVar[str] = "mlp"

    type: str | None = field(None, tier="core", desc=TYPE_DESCRIPTION)
    format_version: int | None = field(
        None, tier="core", ge=1, le=FORMAT_VERSION, desc=f"Version of this config format (current {FORMAT_VERSION}; a file without it is version 1)."
    )
    pre_norm: NormalizationConfig | None = field(
        None, tier="architecture", desc="Normalization of the MLP input (for moe: of the experts' input only, the router sees the raw input; for hybrid_moe: of the input of both branches, the router's too). None: no normalization."
    )
    post_norm: NormalizationConfig | None = field(
        None, tier="architecture", desc="Normalization of the MLP output (for moe: of the combined output; for hybrid_moe: of the sum of the branches). None: no normalization."
    )
    lr_scale: float | None = field(
        None, tier="feature", ge=0, desc="Multiplies the learning rate of every parameter of the MLP, on top of the scales of its sub-layers. None: 1."
    )

    def build(self, hidden_size: int, *, device=None, dtype=None, ep_mesh=None, dp_mesh=None):
        """The torch module this config describes (`fastmoe_cfg.layers`, imported here: configs never need torch).

        `hidden_size` is the model's width; `device` and `dtype` go to every parameter.
        The module's `forward(x, token_mask=None)` takes [tokens, hidden] or [batch, seq, hidden].
        `ep_mesh` (type moe or hybrid_moe): a 1-D DeviceMesh over which the routed experts are spread
        (expert parallelism); `dp_mesh`: with a 2-D (dp, ep) mesh, its other dimension (the ranks that
        hold the same experts and other tokens): the losses' and statistics' sums run over the EP group,
        then over `dp_mesh` (dp × ep ranks). Never a mesh that contains the EP ranks themselves (they
        would be counted twice). See the guide "Expert parallelism".
        """
        try:
            from fastmoe_cfg.layers import build_layer
        except ModuleNotFoundError as exc:
            if exc.name != "torch" and not (exc.name or "").startswith("torch."):
                raise
            raise ModuleNotFoundError(
                "building a layer needs torch, which is not installed; install it with: pip install 'fastmoe_cfg[torch]' "
                "(validate, explain, schema and docs work without it)",
                name=exc.name,
            ) from None
        return build_layer(self, hidden_size, device=device, dtype=dtype, ep_mesh=ep_mesh, dp_mesh=dp_mesh)


class TwoLayerMLPConfig(MLPBaseConfig):
    """The width, activation, gating and two linears of an MLP: shared by `mlp` and the experts of `moe` (not by `hybrid_moe`, whose branches carry their own)."""

    __derived__ = (
        Derived(
            field="activation",
            depends_on=("gated",),
            compute=lambda gated: ActivationType.silu if gated else ActivationType.gelu,
            doc="silu if gated, else gelu.",
        ),
        Derived(
            field="activation_limit",
            depends_on=("activation",),
            compute=lambda activation: GPT_OSS_LIMIT if activation == ActivationType.gpt_oss_glu else None,
            doc=f"{GPT_OSS_LIMIT} with activation gpt_oss_glu (GPT-OSS), else none.",
        ),
    )
    __rules__ = (
        Rule(
            fields=("activation", "gated"),
            check=lambda activation, gated: activation != ActivationType.gpt_oss_glu or gated,
            message=lambda activation, gated: "gpt_oss_glu is a gated linear unit: it needs gated: true",
            doc="activation gpt_oss_glu needs gated: true.",
        ),
        only_with("activation_limit", ("activation",), lambda activation: activation == ActivationType.gpt_oss_glu, "with activation: gpt_oss_glu"),
    )
    # Names from Fast-LLM's older configs and from Hugging Face, pointing at ours.
    __renamed__ = {
        "ffn_hidden_size": "intermediate_size",
        "moe_intermediate_size": "intermediate_size",
        "hidden_act": "activation",
        "hidden_activation": "activation",
        "gated_linear_unit": "gated",
        "mlp_bias": "add_linear_biases",
        "swiglu_limit": "activation_limit",
        "mlp_recompute_level": "recompute_level",
    }

    activation: ActivationType | None = field(None, tier="core", desc="Activation of the hidden layer (the gate's activation when gated).")
    activation_limit: float | None = field(
        None, tier="architecture", gt=0, desc="gpt_oss_glu only: the gate is clamped above at this value and the linear part to [-limit, limit], before the activation."
    )
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
    recompute_level: MLPRecomputeLevel = field(
        MLPRecomputeLevel.none, tier="performance", desc="What backward recomputes instead of storing."
    )
    dropout: float = field(
        0.0, tier="feature", ge=0, lt=1, desc="Training only: dropout with this probability on the layer's output, after post_norm (kept values × 1/(1 - dropout); attnax dropout_rate). Drawn over the real tokens only. 0: off."
    )

    def has_bias(self, layer: AffineLinearConfig) -> bool:
        """Whether `layer` (this config's layer_1 or layer_2) has a bias: its `bias.enabled`, else `add_linear_biases`."""
        return self.add_linear_biases if layer.bias.enabled is None else layer.bias.enabled


@MLPBaseConfig.register("mlp")
class MLPConfig(TwoLayerMLPConfig):
    """A dense MLP: layer_2(activation(layer_1(x)))."""

    type: Literal["mlp"] = field("mlp", tier="core", desc=TYPE_DESCRIPTION)


@MLPBaseConfig.register("moe")
class MoEMLPConfig(TwoLayerMLPConfig):
    """A mixture-of-experts MLP: a router sends each token to `experts_per_token` of the routed experts and sums their outputs, weighted by the routing scores; shared experts process every token."""

    type: Literal["moe"] = field("moe", tier="core", desc=TYPE_DESCRIPTION)

    __rules__ = (
        Rule(
            fields=("experts_per_token", "shared_experts", "experts"),
            check=lambda experts_per_token, shared_experts, experts: experts_per_token + shared_experts <= experts,
            message=lambda experts_per_token, shared_experts, experts: (
                f"must satisfy experts_per_token + shared_experts <= experts ({experts_per_token} + {shared_experts} > {experts})"
            ),
            doc="Each token picks experts_per_token of the experts - shared_experts routed experts: experts_per_token + shared_experts <= experts.",
        ),
        Rule(
            fields=("expert_groups", "experts", "shared_experts"),
            check=lambda expert_groups, experts, shared_experts: (experts - shared_experts) % expert_groups == 0,
            message=lambda expert_groups, experts, shared_experts: (
                f"must divide the experts - shared_experts routed experts ({experts - shared_experts} routed experts, {expert_groups} groups)"
                + _shared_experts_hint(experts, shared_experts, expert_groups)
            ),
            doc="expert_groups divides the experts - shared_experts routed experts.",
        ),
        Rule(
            fields=("expert_groups", "experts", "shared_experts", "expert_group_score"),
            check=lambda expert_groups, experts, shared_experts, expert_group_score: (
                expert_groups == 1 or expert_group_score == ExpertGroupScore.max or (experts - shared_experts) >= 2 * expert_groups
            ),
            message=lambda expert_groups, experts, shared_experts, expert_group_score: (
                f"needs at least 2 routed experts per group, as a group's score is the sum of its top 2 "
                f"({experts - shared_experts} routed experts, {expert_groups} groups)"
            ),
            doc="With expert_groups > 1 and expert_group_score top2_sum, each group holds at least 2 routed experts (a group's score sums its top 2).",
        ),
        Rule(
            fields=("expert_groups", "routing"),
            check=lambda expert_groups, routing: expert_groups == 1 or routing in (RoutingType.aux_loss, RoutingType.aux_free),
            message=lambda expert_groups, routing: f"group-limited routing works with routing aux_loss or aux_free, not {routing}",
            doc="expert_groups > 1 needs routing aux_loss or aux_free.",
        ),
        Rule(
            fields=("expert_groups_per_token", "expert_groups"),
            check=lambda expert_groups_per_token, expert_groups: expert_groups_per_token is None or expert_groups_per_token <= expert_groups,
            message=lambda expert_groups_per_token, expert_groups: (
                f"must satisfy expert_groups_per_token <= expert_groups ({expert_groups_per_token} > {expert_groups})"
            ),
            doc="expert_groups_per_token <= expert_groups.",
        ),
        only_with("expert_group_score", ("expert_groups",), lambda expert_groups: expert_groups > 1, "with expert_groups > 1"),
        Rule(
            fields=("expert_groups_per_token", "expert_groups", "experts", "shared_experts", "experts_per_token"),
            check=lambda expert_groups_per_token, expert_groups, experts, shared_experts, experts_per_token: (
                expert_groups == 1
                or expert_groups_per_token is None
                or expert_groups_per_token * ((experts - shared_experts) // expert_groups) >= experts_per_token
            ),
            message=lambda expert_groups_per_token, expert_groups, experts, shared_experts, experts_per_token: (
                f"must leave enough experts for top-k: expert_groups_per_token · routed experts per group >= experts_per_token "
                f"({expert_groups_per_token} · {(experts - shared_experts) // expert_groups} < {experts_per_token})"
            ),
            doc="With expert_groups > 1, the expert_groups_per_token kept groups hold at least experts_per_token experts.",
        ),
        Rule(
            fields=("auxiliary_loss_coefficient", "routing"),
            check=lambda auxiliary_loss_coefficient, routing: auxiliary_loss_coefficient == 0 or routing == RoutingType.aux_loss,
            message=lambda auxiliary_loss_coefficient, routing: (
                f"auxiliary_loss_coefficient {auxiliary_loss_coefficient} only applies with routing: aux_loss; routing {routing} "
                "adds no load-balancing loss (remove it, or set it to 0)"
            ),
            doc="auxiliary_loss_coefficient other than 0 needs routing: aux_loss (the only routing with a load-balancing loss).",
        ),
        only_with("bias_update_rate", ("routing",), lambda routing: routing == RoutingType.aux_free, "with routing: aux_free"),
        only_with("automatic_bias_update", ("routing",), lambda routing: routing == RoutingType.aux_free, "with routing: aux_free"),
        only_with("balanced_routing_noise", ("routing",), lambda routing: routing == RoutingType.balanced, "with routing: balanced"),
        only_with("drop_policy", ("capacity_factor",), lambda capacity_factor: capacity_factor is not None, "with a capacity_factor"),
        only_with(
            "shared_expert_intermediate_size", ("shared_experts",), lambda shared_experts: shared_experts > 0, "with shared_experts >= 1"
        ),
        Rule(
            fields=("shared_expert_gate", "shared_experts"),
            check=lambda shared_expert_gate, shared_experts: not shared_expert_gate.enabled or shared_experts > 0,
            message=lambda shared_expert_gate, shared_experts: "gates the shared experts: it needs shared_experts >= 1",
            doc="shared_expert_gate needs shared_experts >= 1.",
        ),
        ignored_by_balanced("router_input_scale", 1.0, "1"),
        ignored_by_balanced("router_normalization", None, "null"),
        ignored_by_balanced("router_score_function", RouterScoreFunction.softmax, "softmax"),
        Rule(
            fields=("normalize_expert_weights", "routing", "router_score_function"),
            check=lambda normalize_expert_weights, routing, router_score_function: (
                routing != RoutingType.balanced or normalize_expert_weights or router_score_function == RouterScoreFunction.sigmoid
            ),
            message=lambda normalize_expert_weights, routing, router_score_function: (
                "normalize_expert_weights false has no effect with routing: balanced, which ignores the router's scores "
                "(remove it, or use another routing)"
            ),
            doc="normalize_expert_weights false has no effect with routing: balanced.",
        ),
        ignored_by_balanced("router_weight_on_input", False, "false"),
        ignored_by_balanced("router_dtype", RouterDtype.float32, "float32"),
        Rule(
            fields=("drop_policy", "routing", "balanced_routing_noise"),
            check=lambda drop_policy, routing, balanced_routing_noise: (
                routing != RoutingType.balanced or balanced_routing_noise or drop_policy != DropPolicy.position
            ),
            message=lambda drop_policy, routing, balanced_routing_noise: (
                "position has no effect with routing: balanced and no balanced_routing_noise: every weight is equal, so "
                "probability already keeps the earliest tokens (remove it)"
            ),
            doc="drop_policy position has no effect with routing: balanced without balanced_routing_noise.",
        ),
        Rule(
            fields=("router_weight_on_input", "experts_per_token"),
            check=lambda router_weight_on_input, experts_per_token: not router_weight_on_input or experts_per_token == 1,
            message=lambda router_weight_on_input, experts_per_token: (
                f"needs experts_per_token = 1 (got {experts_per_token}): with several experts the weight on the input does not factor out"
            ),
            doc="router_weight_on_input needs experts_per_token = 1.",
        ),
        Rule(
            fields=("router_weight_on_input", "normalize_expert_weights", "experts_per_token"),
            check=lambda router_weight_on_input, normalize_expert_weights, experts_per_token: (
                not router_weight_on_input or experts_per_token != 1 or not normalize_expert_weights
            ),
            message=lambda router_weight_on_input, normalize_expert_weights, experts_per_token: (
                "would scale the input by 1: a normalized weight of one expert per token is always 1; set "
                "normalize_expert_weights: false (the default with router_score_function: sigmoid, as Llama-4)"
            ),
            doc="router_weight_on_input needs a weight that is not renormalised to 1: normalize_expert_weights false.",
        ),
        only_with("jitter_target", ("jitter_eps",), lambda jitter_eps: jitter_eps > 0, "with jitter_eps > 0"),
        only_with("jitter_distribution", ("jitter_eps",), lambda jitter_eps: jitter_eps > 0, "with jitter_eps > 0"),
        Rule(
            fields=("jitter_eps", "routing", "jitter_target"),
            check=lambda jitter_eps, routing, jitter_target: (
                routing != RoutingType.balanced or jitter_eps == 0 or jitter_target == JitterTarget.layer_input
            ),
            message=lambda jitter_eps, routing, jitter_target: (
                f"jitter_eps {format_value(jitter_eps)} on the {jitter_target} has no effect with routing: balanced, which ignores "
                "the router's scores (remove it, use jitter_target: layer_input, or use another routing)"
            ),
            doc="jitter_eps other than 0 has no effect with routing: balanced, unless jitter_target is layer_input.",
        ),
        Rule(
            fields=("expert_load_scaling", "experts_per_token", "experts", "shared_experts"),
            check=lambda expert_load_scaling, experts_per_token, experts, shared_experts: (
                not expert_load_scaling or experts_per_token < experts - shared_experts
            ),
            message=lambda expert_load_scaling, experts_per_token, experts, shared_experts: (
                f"has no effect when every token picks every routed expert (experts_per_token {experts_per_token} = "
                f"{experts - shared_experts} routed experts): every load is then the mean (remove it)"
            ),
            doc="expert_load_scaling needs experts_per_token < experts - shared_experts (else every load is the mean).",
        ),
        *(
            only_with(name, ("routing",), lambda routing: routing == RoutingType.aux_free, "with routing: aux_free")
            for name in ("bias_update_rule", "bias_update_schedule", "correction_bias_target")
        ),
        only_with("bias_update_ema_decay", ("bias_update_rule",), lambda rule: rule == BiasUpdateRule.ema, "with bias_update_rule: ema"),
        only_with(
            "bias_update_total_steps",
            ("bias_update_schedule",),
            lambda schedule: schedule in (BiasUpdateSchedule.cosine_decay, BiasUpdateSchedule.linear_warmup),
            "with bias_update_schedule cosine_decay or linear_warmup",
        ),
        Rule(
            fields=("bias_update_schedule", "bias_update_total_steps", "routing"),
            check=lambda bias_update_schedule, bias_update_total_steps, routing: (
                bias_update_schedule in (None, BiasUpdateSchedule.constant) or bias_update_total_steps is not None
                or routing != RoutingType.aux_free  # reported by the aux_free rule
            ),
            message=lambda bias_update_schedule, bias_update_total_steps, routing: (
                f"{bias_update_schedule} needs bias_update_total_steps, the number of update_bias() calls of the whole "
                "training (progress = bias_update_step / bias_update_total_steps)"
            ),
            doc="bias_update_schedule cosine_decay or linear_warmup needs bias_update_total_steps.",
        ),
        Rule(
            fields=("expert_weights_norm_order", "normalize_expert_weights", "sparsemixer_eps"),
            check=lambda expert_weights_norm_order, normalize_expert_weights, sparsemixer_eps: (
                expert_weights_norm_order == 1 or (normalize_expert_weights and sparsemixer_eps is None)
            ),
            message=lambda expert_weights_norm_order, normalize_expert_weights, sparsemixer_eps: (
                "only applies with normalize_expert_weights: true"
                + ("" if sparsemixer_eps is None else " and without sparsemixer_eps, whose weights are not renormalised")
                + " (remove it, or set it to 1)"
            ),
            doc="expert_weights_norm_order other than 1 needs normalize_expert_weights: true and no sparsemixer_eps.",
        ),
        Rule(
            fields=("expert_weights_epsilon", "normalize_expert_weights", "sparsemixer_eps"),
            check=lambda expert_weights_epsilon, normalize_expert_weights, sparsemixer_eps: (
                expert_weights_epsilon is None or (normalize_expert_weights and sparsemixer_eps is None)
            ),
            message=lambda expert_weights_epsilon, normalize_expert_weights, sparsemixer_eps: (
                "only applies with normalize_expert_weights: true"
                + ("" if sparsemixer_eps is None else " and without sparsemixer_eps, whose weights are not renormalised")
                + " (remove it, or set it to null)"
            ),
            doc="expert_weights_epsilon needs normalize_expert_weights: true and no sparsemixer_eps.",
        ),
        ignored_by_balanced("expert_weights_norm_order", 1.0, "1"),
        ignored_by_balanced("expert_weights_epsilon", None, "null"),
        Rule(
            fields=("sparsemixer_eps", "routing", "router_score_function", "expert_groups", "normalize_expert_weights"),
            check=lambda sparsemixer_eps, routing, router_score_function, expert_groups, normalize_expert_weights: sparsemixer_eps is None or (
                routing == RoutingType.aux_loss and router_score_function == RouterScoreFunction.softmax and expert_groups == 1
                and bool(normalize_expert_weights)
            ),
            message=lambda sparsemixer_eps, routing, router_score_function, expert_groups, normalize_expert_weights: (
                "SparseMixer weighs the top-k of softmax-scored logits one by one: it needs routing aux_loss, router_score_function "
                f"softmax, expert_groups 1 and normalize_expert_weights true (got routing {routing}, router_score_function "
                f"{router_score_function}, expert_groups {expert_groups}, normalize_expert_weights {format_value(normalize_expert_weights)})"
            ),
            doc="sparsemixer_eps needs routing aux_loss, router_score_function softmax, expert_groups 1 and normalize_expert_weights true.",
        ),
        Rule(
            fields=("dropless_kernel", "implementation"),
            check=lambda dropless_kernel, implementation: (
                dropless_kernel == DroplessKernel.auto or implementation != MoEImplementation.looped
            ),
            message=lambda dropless_kernel, implementation: (
                f"{dropless_kernel} has no effect with implementation: looped, which runs no dropless kernel (remove it, "
                "or use implementation dropless or auto)"
            ),
            doc="dropless_kernel other than auto needs implementation dropless or auto (looped runs no dropless kernel).",
        ),
    )
    __derived__ = (
        Derived(
            field="router_score_function",
            depends_on=("routing", "experts_per_token"),
            compute=lambda routing, experts_per_token: (
                RouterScoreFunction.sigmoid if routing == RoutingType.sinkhorn and experts_per_token == 1 else RouterScoreFunction.softmax
            ),
            doc="sigmoid for sinkhorn routing with experts_per_token = 1 (Fast-LLM), else softmax.",
        ),
        Derived(
            field="normalize_expert_weights",
            depends_on=("routing", "router_score_function", "experts_per_token"),
            compute=lambda routing, router_score_function, experts_per_token: not (
                routing == RoutingType.sinkhorn or (router_score_function == RouterScoreFunction.sigmoid and experts_per_token == 1)
            ),
            doc="false for sinkhorn routing (Fast-LLM) and for one sigmoid-scored expert per token (Llama-4: the weight is the sigmoid), else true.",
        ),
        Derived(
            field="expert_groups_per_token",
            depends_on=("expert_groups",),
            # Only from a valid expert_groups: an invalid one is reported once, at expert_groups.
            compute=lambda expert_groups: expert_groups if type(expert_groups) is int and 1 <= expert_groups < 2**63 else None,
            doc="expert_groups: every group is eligible.",
        ),
        Derived(
            field="expert_group_score",
            depends_on=("expert_groups",),
            compute=lambda expert_groups: (
                ExpertGroupScore.top2_sum if type(expert_groups) is int and 1 < expert_groups < 2**63 else None
            ),
            doc="top2_sum with expert_groups > 1 (DeepSeek-V3), else none.",
        ),
        Derived(
            field="auxiliary_loss_coefficient",
            depends_on=("routing",),
            compute=lambda routing: AUXILIARY_LOSS_COEFFICIENT if routing == RoutingType.aux_loss else 0.0,
            doc=f"{AUXILIARY_LOSS_COEFFICIENT} with routing aux_loss, else 0 (the other routings have no load-balancing loss).",
        ),
        routing_default("bias_update_rate", RoutingType.aux_free, BIAS_UPDATE_RATE, str(BIAS_UPDATE_RATE), "DeepSeek-V3"),
        routing_default("automatic_bias_update", RoutingType.aux_free, False, "false"),
        routing_default("balanced_routing_noise", RoutingType.balanced, 0.0, "0"),
        Derived(
            field="drop_policy",
            depends_on=("capacity_factor",),
            compute=lambda capacity_factor: None if capacity_factor is None else DropPolicy.probability,
            doc="probability when capacity_factor is set, else none.",
        ),
        Derived(
            field="jitter_target",
            depends_on=("jitter_eps",),
            compute=lambda jitter_eps: JitterTarget.router_logits if _positive(jitter_eps) else None,
            doc="router_logits when jitter_eps > 0 (Fast-LLM), else none.",
        ),
        Derived(
            field="jitter_distribution",
            depends_on=("jitter_eps",),
            compute=lambda jitter_eps: JitterDistribution.uniform if _positive(jitter_eps) else None,
            doc="uniform when jitter_eps > 0, else none.",
        ),
        routing_default("bias_update_rule", RoutingType.aux_free, BiasUpdateRule.sign, "sign", "DeepSeek-V3"),
        Derived(
            field="bias_update_ema_decay",
            depends_on=("bias_update_rule",),
            compute=lambda bias_update_rule: BIAS_UPDATE_EMA_DECAY if bias_update_rule == BiasUpdateRule.ema else None,
            doc=f"{BIAS_UPDATE_EMA_DECAY} with bias_update_rule ema (KempnerForge's ema_decay), else none.",
        ),
        routing_default("bias_update_schedule", RoutingType.aux_free, BiasUpdateSchedule.constant, "constant"),
        routing_default("correction_bias_target", RoutingType.aux_free, CorrectionBiasTarget.selection, "selection", "DeepSeek-V3"),
    )
    # The names of the Hugging Face families that `convert` imports (and of Fast-LLM's older configs).
    __renamed__ = {
        "num_experts": Renamed("experts", "with shared experts, experts = num_experts + shared_experts (experts counts them)"),
        "num_local_experts": "experts",
        "n_routed_experts": Renamed("experts", "experts counts the shared experts too: experts = n_routed_experts + n_shared_experts"),
        "num_experts_per_tok": "experts_per_token",
        "num_experts_per_token": "experts_per_token",
        "top_k": "experts_per_token",
        "top_k_experts": "experts_per_token",
        "num_shared_experts": "shared_experts",
        "n_shared_experts": "shared_experts",
        "norm_topk_prob": "normalize_expert_weights",
        "scoring_func": "router_score_function",
        "n_group": "expert_groups",
        "topk_group": "expert_groups_per_token",
        "topk_method": Renamed("routing", "DeepSeek-V3's noaux_tc is routing: aux_free"),
        "aux_loss_alpha": Renamed("sequence_auxiliary_loss_coefficient", "DeepSeek-V3's aux_loss_alpha (with seq_aux) is the sequence-wise loss"),
        "router_aux_loss_coef": Renamed("auxiliary_loss_coefficient", "HF pools all layers into one loss; ours is per layer"),
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
    auxiliary_loss_coefficient: float | None = field(
        None, tier="feature", ge=0, desc="Scale of the load-balancing loss coefficient · E_r · Σ_e f_e · P_e (aux_loss routing only)."
    )
    z_loss_coefficient: float = field(
        0.0, tier="feature", ge=0, desc="Scale of the router z-loss mean_t(logsumexp(logits_t)²), of the logits the router produced (before jitter on the logits)."
    )
    jitter_eps: float = field(
        0.0, tier="feature", ge=0, lt=1, desc="In training, multiplicative noise of scale jitter_eps on the router logits (after the z-loss reads them), the router input or the layer input (jitter_target), uniform or normal (jitter_distribution). 0: off."
    )
    dropless_dynamic_shape: bool = field(
        False, tier="expert", desc="Dropless implementation: size buffers by the actual token counts instead of the worst case (less memory, a host sync)."
    )
    implementation: MoEImplementation = field(MoEImplementation.auto, tier="expert", desc="How the experts are executed.")
    dropless_kernel: DroplessKernel = field(
        DroplessKernel.auto, tier="expert", desc="The kernels of the dropless experts: auto (Triton for float32/bfloat16/float16 inputs on a CUDA device when triton is installed, else torch), torch, or triton (on a CPU tensor only under TRITON_INTERPRET=1, for tests; otherwise an error at the first forward). The same function within floating-point tolerance (float32 products in IEEE precision, never TF32); dropless_dynamic_shape applies to the torch kernels only (the Triton ones pad nothing). The layer logs its choice when it is built."
    )

    # Routing of the other MoE families (DeepSeek-V3, Qwen, OLMoE, GPT-OSS, Gemma, Llama-4, MAX, NeMo).
    router_score_function: RouterScoreFunction | None = field(
        None, tier="architecture", desc="scores = f(logits) over the routed experts; routing selects on the scores and weights are the scores of the chosen experts."
    )
    normalize_expert_weights: bool | None = field(
        None, tier="architecture", desc="Divide the chosen experts' scores by their sum (+1e-20 for sigmoid), before routed_scaling_factor (HF's norm_topk_prob)."
    )
    routed_scaling_factor: float = field(
        1.0, tier="architecture", gt=0, desc="Constant multiplying the routed experts' weights after normalization (DeepSeek-V3: 2.5); shared experts keep weight 1."
    )
    expert_groups: int = field(
        1, tier="architecture", ge=1, desc="Group-limited routing (DeepSeek-V3 n_group): the routed experts form this many consecutive groups; a group's score (expert_group_score) is by default the sum of its top 2 selection scores. 1: off."
    )
    expert_groups_per_token: int | None = field(
        None, tier="architecture", ge=1, desc="Groups kept per token (DeepSeek-V3 topk_group): top-k picks among the experts of the best groups only."
    )
    expert_group_score: ExpertGroupScore | None = field(
        None, tier="architecture", desc="With expert_groups > 1, a group's score, from its experts' selection scores: top2_sum, the sum of its best two (DeepSeek-V3), or max, its best one (DeepSeek-V2's group_limited_greedy)."
    )
    shared_expert_intermediate_size: int | None = field(
        None, tier="architecture", ge=1, desc="Width of the one dense MLP that holds the shared experts (Qwen2-MoE shared_expert_intermediate_size). None: shared_experts · intermediate_size."
    )
    shared_expert_gate: OptionalParameterConfig = field(
        default_factory=OptionalParameterConfig, tier="architecture", desc="Learnable vector g [hidden]: the shared experts' output is multiplied by sigmoid(pre_norm(x) · g) (Qwen2-MoE). Off unless enabled; default initialization normal, std hidden_size^-0.5."
    )
    router_weight_on_input: bool = field(
        False, tier="architecture", desc="The routing weight multiplies the expert's input instead of its output: expert(w · x) (Llama-4, MAX apply_router_weight_first). Needs experts_per_token = 1."
    )
    router_bias: OptionalParameterConfig = field(
        default_factory=OptionalParameterConfig, tier="architecture", desc="A learnable bias [E_r] on the router logits, `router.bias` (GPT-OSS). Off unless enabled; default initialization 0."
    )
    capacity_factor: float | None = field(
        None, tier="architecture", gt=0, desc="Each routed expert takes at most ⌈capacity_factor · T · experts_per_token / E_r⌉ of the T real tokens (computed from the decimal value); the other assignments are dropped (zero contribution, counted in stats.dropped_tokens). With expert parallelism, T is each rank's own tokens (capacity per rank, before the exchange, as Megatron-LM; the loads of expert_load_scaling stay global). None: dropless."
    )
    drop_policy: DropPolicy | None = field(None, tier="architecture", desc="Which assignments an expert over capacity keeps.")
    bias_update_rate: float | None = field(
        None, tier="feature", ge=0, desc="aux_free: layer.update_bias() adds bias_update_rate · sign(mean load - load_e) to the correction bias, loads counted over the training forwards since the last update."
    )
    automatic_bias_update: bool | None = field(
        None, tier="feature", desc="aux_free: update the correction bias after every training forward (never inside a recompute). False: the training loop calls layer.update_bias(), e.g. after the optimizer step."
    )
    sequence_auxiliary_loss_coefficient: float = field(
        0.0, tier="feature", ge=0, desc="Scale of DeepSeek-V3's sequence-wise balance loss Σ_e f_e · P_e per sequence (f_e = E_r/(k·T_s) · tokens of the sequence choosing e, P_e = mean of the normalized scores; 1 when balanced), averaged over sequences. 2-D input is one sequence."
    )
    router_dtype: RouterDtype = field(RouterDtype.float32, tier="feature", desc="Precision of the router linear and of the scores.")
    balanced_routing_noise: float | None = field(
        None, tier="feature", ge=0, le=1, desc="balanced routing: 0 spreads tokens evenly; up to 1 the choices and weights become random and skewed (NeMo's noise)."
    )

    # Options of the other systems (Megatron-LM, HF, attnax, KempnerForge).
    jitter_target: JitterTarget | None = field(
        None, tier="feature", desc="Where jitter_eps's multiplicative noise acts in training: router_logits (Fast-LLM), router_input (Megatron-LM moe_input_jitter_eps) or layer_input (HF Mixtral router_jitter_noise, DBRX moe_jitter_eps). Drawn over the real tokens only."
    )
    jitter_distribution: JitterDistribution | None = field(
        None, tier="feature", desc="The law of the jitter noise: uniform U(1 - jitter_eps, 1 + jitter_eps), or normal N(1, jitter_eps²) (attnax router_jitter)."
    )
    expert_load_scaling: bool = field(
        False, tier="feature", desc="Training only: each routed expert's output rows are multiplied by (T·k / E_r) / max(load_e, 1), load_e its assignments before capacity drops, so busy experts do not dominate learning (KempnerForge moe_gradient_scale, after DeepSeek-V3); the forward value changes too."
    )
    bias_update_rule: BiasUpdateRule | None = field(
        None, tier="feature", desc="aux_free: how update_bias() moves the correction bias: sign (DeepSeek-V3) or ema (KempnerForge's SigmoidTopKRouter)."
    )
    bias_update_ema_decay: float | None = field(
        None, tier="feature", gt=0, lt=1, desc="bias_update_rule ema: the decay of the moving average of the loads (KempnerForge's ema_decay)."
    )
    bias_update_schedule: BiasUpdateSchedule | None = field(
        None, tier="feature", desc="aux_free: the bias update rate as a function of progress = bias_update_step / bias_update_total_steps (KempnerForge moe_bias_schedule); update_bias() advances the layer's bias_update_step buffer."
    )
    bias_update_total_steps: int | None = field(
        None, tier="feature", ge=1, desc="The number of update_bias() calls over the whole training, for bias_update_schedule cosine_decay and linear_warmup (KempnerForge's max_steps)."
    )
    correction_bias_target: CorrectionBiasTarget | None = field(
        None, tier="architecture", desc="aux_free: where the correction bias acts: selection (the choice only, DeepSeek-V3) or logits (before the score function, so the weights change too: KempnerForge)."
    )
    expert_weights_norm_order: float = field(
        1.0, tier="architecture", gt=0, desc="normalize_expert_weights divides the chosen experts' weights by their p-norm (Σ_k w_k^p)^(1/p) with this p: 1 is their sum (DBRX moe_normalize_expert_weights)."
    )
    expert_weights_epsilon: float | None = field(
        None, tier="architecture", ge=0, desc="Added to the denominator of normalize_expert_weights (LFM2-MoE: 1e-6). None: 1e-20 for sigmoid scores (DeepSeek-V3), 0 for softmax scores."
    )
    sparsemixer_eps: float | None = field(
        None, tier="architecture", ge=0, desc="SparseMixer's weights (GRIN, Phi-3.5-MoE; their eval-mode math, in training too): the experts are the top-k of the logits; the weight of the i-th is the softmax, at it, over the experts not chosen before it whose logit s_j is within a relative gap (s_i - s_j) / max(|s_j|, s_i) <= 2 · sparsemixer_eps of its logit s_i, the others masked. Replaces the renormalisation of normalize_expert_weights. None: off."
    )

    def applied_losses(self) -> frozenset[str]:
        """The auxiliary losses this layer adds to the gradient in training, by their `layer.stats` name.

        The others in `layer.stats` (`load_balancing_loss`, `sequence_load_balancing_loss`, `z_loss`) are
        monitoring values: computed, never applied (coefficient 0, or a routing without that loss).
        """
        coefficients = self.loss_coefficients()
        return frozenset(name for name, coefficient in coefficients.items() if coefficient)

    def loss_coefficients(self) -> dict[str, float]:
        """The coefficient of each auxiliary loss, by its `layer.stats` name (0: not applied)."""
        return {
            "z_loss": self.z_loss_coefficient,
            "load_balancing_loss": (self.auxiliary_loss_coefficient or 0.0) if self.routing == RoutingType.aux_loss else 0.0,
            "sequence_load_balancing_loss": self.sequence_auxiliary_loss_coefficient,
        }

    def shared_intermediate_size(self) -> int:
        """Width of the one dense MLP that holds the shared experts (0 without shared experts)."""
        if not self.shared_experts:
            return 0
        return self.shared_expert_intermediate_size or self.shared_experts * self.intermediate_size
