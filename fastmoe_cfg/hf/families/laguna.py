"""Laguna (poolside, `LagunaSparseMoeBlock`): DeepSeek-V3's routing without expert groups. The router linear runs in the
model's dtype, its logits are cast to float32; sigmoid scores, top-k of scores + e_score_correction_bias (the choice
only), the chosen raw scores always renormalised (no epsilon), the routed output × moe_routed_scaling_factor; one shared
MLP of shared_expert_intermediate_size on every token. The MoE layers are those whose mlp_layer_types entry is "sparse"
(default: every layer but the first); dense MLPs (intermediate_size) elsewhere.

Refused: moe_router_logit_softcapping > 0 (the logits become c·tanh(logits / c) before the sigmoid: a router-logit
softcap our router lacks), moe_apply_router_weight_on_input (transformers raises NotImplementedError), and
output_router_logits with router_aux_loss_coef (a softmax load-balancing loss that aux_free routing does not have).
Laguna's config.json also carries norm_topk_prob and mlp_only_layers, which transformers does not read: they must
say what the block does.
"""

from __future__ import annotations

from typing import Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import check_layer_types
from fastmoe_cfg.hf.families.lara_mini import shared_expert
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp

BLOCK = "LagunaSparseMoeBlock"
PLACEMENT = 'mlp_layer_types[layer] is "sparse" (default: every layer but the first)'


class LagunaFields(HFFields):
    num_experts: int = hf_field(ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    shared_expert_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width
    hidden_act: Activation = "silu"  # absent fields: LagunaConfig's defaults
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    moe_routed_scaling_factor: Number = hf_field(1.0, gt=0)
    moe_apply_router_weight_on_input: bool = False
    moe_router_logit_softcapping: Number = 0.0
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False
    # Laguna's own config.json; transformers' Laguna does not read them.
    norm_topk_prob: bool | None = None
    mlp_only_layers: list[int] | None = None


def moe_layers(hf: LagunaFields) -> tuple[int, ...]:
    if hf.mlp_layer_types is None:
        return tuple(range(1, hf.num_hidden_layers))
    return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")


def check(hf: LagunaFields, context: Context) -> None:
    check_layer_types(hf, context)
    context.unsupported_unless(
        "moe_router_logit_softcapping", lambda value: value <= 0,
        "LagunaTopKRouter then softcaps the router logits, c·tanh(logits / c), before the sigmoid: a router-logit "
        "softcap our router does not have",
    )
    context.unsupported_unless(
        "moe_apply_router_weight_on_input", lambda value: value is False,
        "transformers' Laguna does not implement it (LagunaConfig raises NotImplementedError)",
    )
    if hf.output_router_logits and hf.router_aux_loss_coef:
        context.problem(
            "output_router_logits",
            "true cannot be converted: LagunaForCausalLM then adds router_aux_loss_coef × a load-balancing loss of the "
            "softmax of the router logits, which aux_free routing (sigmoid scores, correction bias) does not have; "
            "set it to false (or router_aux_loss_coef to 0)",
        )
    context.unsupported_unless("norm_topk_prob", lambda value: value is True, f"transformers' {BLOCK} always renormalises the top-k weights")
    dense_layers = [index for index in range(hf.num_hidden_layers) if index not in set(moe_layers(hf))]
    context.unsupported_unless(
        "mlp_only_layers", lambda value: sorted(set(value)) == dense_layers,
        f"transformers' Laguna places its dense layers by mlp_layer_types (here {dense_layers}), not by mlp_only_layers: "
        "which layers are dense is ambiguous",
    )


def convert(out: Conversion, hf: LagunaFields, context: Context) -> None:
    check(hf, context)
    if not out.is_moe:
        if hf.intermediate_size is None:
            context.problem("intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
            return
        return dense(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    out.set("type", "moe", f"{BLOCK}: {PLACEMENT}")
    out.set("experts", hf.num_experts + 1, "num_experts + the shared expert")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    shared_expert(out, hf.shared_expert_intermediate_size, BLOCK)
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    out.set("routing", "aux_free", "LagunaTopKRouter: top-k of sigmoid + e_score_correction_bias, the bias chooses only")
    out.set("router_score_function", "sigmoid", "LagunaTopKRouter: sigmoid of the router logits in float32")
    out.set("normalize_expert_weights", True, "LagunaTopKRouter always renormalises the top-k weights")
    out.set("expert_weights_epsilon", 0.0, "LagunaTopKRouter divides by the sum of the chosen scores, without an epsilon")
    out.set("routed_scaling_factor", hf.moe_routed_scaling_factor, context.named("moe_routed_scaling_factor"))
    out.set("router_dtype", "input", "LagunaTopKRouter runs the router linear in the model's dtype, then casts the logits to float32")


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("gate.weight",), "router.weight"),
        Tensors(("gate.e_score_correction_bias",), "router_correction_bias"),
        *fused_experts(),
        *gated_mlp("shared_experts", "shared"),
    ]


FAMILY = Family(
    model_types=("laguna",),
    fields=LagunaFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("laguna",),
    note=(
        "DeepSeek-V3's routing without groups: sigmoid, top-k on scores + e_score_correction_bias, always renormalised × "
        "moe_routed_scaling_factor, one shared MLP of shared_expert_intermediate_size; MoE layers where mlp_layer_types is "
        "sparse (default: all but layer 0); moe_router_logit_softcapping > 0 refused (a router-logit softcap)"
    ),
)
