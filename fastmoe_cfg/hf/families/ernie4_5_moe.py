"""ERNIE-4.5-MoE (`Ernie4_5_MoeSparseMoeBlock`): softmax scores (float32), top-k on scores + the correction bias
(`gate.moe_statics.e_score_correction_bias`: chooses only), weights the chosen probabilities / max(their sum,
moe_norm_min), plus moe_num_shared_experts shared experts (one MLP of moe_intermediate_size × moe_num_shared_experts).
MoE layers: (layer + 1) % moe_layer_interval == 0 and moe_layer_start_index <= layer <= moe_layer_end_index (-1: the
last); dense MLPs (intermediate_size) elsewhere.

The clamp of the denominator at moe_norm_min (1e-12 published) acts only when the k chosen softmax probabilities sum
below it, which only a correction bias that overrides every likely expert can cause; ours divides by the sum
(the softmax over the chosen logits), so a moe_norm_min above NORM_MIN_BOUND is refused.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp

NORM_MIN_BOUND = 1e-6


class Ernie4_5_MoeFields(HFFields):
    moe_num_experts: int = hf_field(names=("moe_num_experts", "num_experts"), ge=1)
    moe_k: int = hf_field(names=("moe_k", "num_experts_per_tok"), ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width (required where there are some)
    moe_num_shared_experts: int = hf_field(2, ge=0)  # Ernie4_5_MoeConfig's defaults from here on
    moe_layer_start_index: int = 1
    moe_layer_end_index: int = -1
    moe_layer_interval: int = hf_field(1, ge=1)
    moe_norm_min: Number = hf_field(1e-12, ge=0)
    use_bias: bool = False
    hidden_act: Activation = "silu"
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def moe_layers(hf: Ernie4_5_MoeFields) -> tuple[int, ...]:
    """As Ernie4_5_MoeDecoderLayer (moe_layer_end_index -1 is the last layer, as Ernie4_5_MoeConfig sets it)."""
    end = hf.num_hidden_layers - 1 if hf.moe_layer_end_index == -1 else hf.moe_layer_end_index
    return tuple(
        index for index in range(hf.num_hidden_layers)
        if (index + 1) % hf.moe_layer_interval == 0 and hf.moe_layer_start_index <= index <= end
    )


PLACED = "(layer + 1) % moe_layer_interval == 0, moe_layer_start_index <= layer <= moe_layer_end_index"


def convert(out: Conversion, hf: Ernie4_5_MoeFields, context: Context) -> None:
    biases = f"{context.named('use_bias')}: biases on gate_proj, up_proj and down_proj"
    if not out.is_moe:
        if hf.intermediate_size is None:
            context.problem("intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
            return
        dense(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
        out.set("add_linear_biases", hf.use_bias, biases)
        return
    shared = hf.moe_num_shared_experts
    context.unsupported_unless(
        "use_bias", lambda value: not value or not shared,
        "the shared experts would have biases and the routed experts none; our experts and shared experts share add_linear_biases",
    )
    context.unsupported_unless(
        "moe_norm_min", lambda value: value <= NORM_MIN_BOUND,
        f"the weights' denominator is max(sum, moe_norm_min); ours is the sum, which equals it only while the chosen "
        f"probabilities sum above moe_norm_min: a value above {NORM_MIN_BOUND} would change the weights of real tokens",
    )
    out.set("type", "moe", f"Ernie4_5_MoeSparseMoeBlock: {PLACED}")
    out.set("experts", hf.moe_num_experts + shared, "moe_num_experts + moe_num_shared_experts")
    out.set("experts_per_token", hf.moe_k, "moe_k")
    if shared:
        out.set("shared_experts", shared, f"{context.named('moe_num_shared_experts')}: one MLP of width moe_intermediate_size × moe_num_shared_experts")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    out.set(
        "routing", "aux_free",
        "top-k of the softmax scores + moe_statics.e_score_correction_bias, which chooses only; HF's pooled load-balancing "
        f"loss ({context.named('router_aux_loss_coef')}, added with output_router_logits only) has no counterpart with aux_free",
    )
    out.set("router_score_function", "softmax", "Ernie4_5_MoeTopKRouter: softmax of the router logits in float32")
    out.set(
        "normalize_expert_weights", True,
        f"the chosen probabilities / max(their sum, {context.named('moe_norm_min')}): the sum, unless it is below moe_norm_min",
    )
    out.set("router_dtype", "float32", "Ernie4_5_MoeTopKRouter runs the router linear in float32 (autocast off)")


def tensors(config) -> list[Tensors]:
    table = [
        Tensors(("gate.weight",), "router.weight"),
        Tensors(("gate.moe_statics.e_score_correction_bias",), "router_correction_bias", lambda t: t[0].reshape(-1), lambda t: [t[None]]),
        *fused_experts(),
    ]
    return table + (gated_mlp("shared_experts", "shared") if config.shared_experts else [])


FAMILY = Family(
    model_types=("ernie4_5_moe",),
    fields=Ernie4_5_MoeFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block="Ernie4_5_MoeSparseMoeBlock",
    hf_modules=("ernie4_5_moe",),
    note="softmax scores, top-k on scores + e_score_correction_bias (aux_free), / max(sum, moe_norm_min), shared experts; MoE layers by moe_layer_start_index / end_index / interval; moe_norm_min above 1e-6 refused",
)
