"""Flint (`FlintSparseMoeBlock`): sigmoid scores of a float32 router without a correction bias, top-k of them, the chosen
scores renormalised with norm_topk_prob (no epsilon); one shared expert of shared_expert_intermediate_size added in
full (no gate). The MoE layers are Qwen's: not in mlp_only_layers ([0, 1] by default), (index + 1) a multiple of
decoder_sparse_step, num_experts > 0; dense MLPs (intermediate_size) elsewhere.

With output_router_logits, FlintForCausalLM adds router_aux_loss_coef × a Switch loss of the softmax of the router
logits, pooled over the layers: a loss of other scores than the sigmoid ones our aux_loss routing balances, refused.
"""

from __future__ import annotations

from pydantic import Field

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.lara_mini import shared_expert, tensors
from fastmoe_cfg.hf.families.qwen3_moe import SPARSE, dense_layer, qwen_moe_layers
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, gated_experts

BLOCK = "FlintSparseMoeBlock"


class FlintFields(HFFields):
    num_experts: int = hf_field(ge=0)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    shared_expert_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width (required where there are some)
    decoder_sparse_step: int = hf_field(1, ge=1)  # absent fields: FlintConfig's defaults
    mlp_only_layers: list[int] = Field(default_factory=lambda: [0, 1])
    hidden_act: Activation = "silu"
    norm_topk_prob: bool = True
    router_aux_loss_coef: Number = hf_field(0.0005, ge=0)
    output_router_logits: bool = False


def convert(out: Conversion, hf: FlintFields, context: Context) -> None:
    if not out.is_moe:
        return dense_layer(out, hf, context)
    if hf.output_router_logits and hf.router_aux_loss_coef:
        context.problem(
            "output_router_logits",
            "true cannot be converted: FlintForCausalLM then adds router_aux_loss_coef × a load-balancing loss of the "
            "softmax of the router logits, pooled over all layers, where the block routes on sigmoid scores (our "
            "load-balancing loss would read those); set it to false (or router_aux_loss_coef to 0)",
        )
    out.set("type", "moe", SPARSE)
    out.set("experts", hf.num_experts + 1, "num_experts + the shared expert")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    shared_expert(out, hf.shared_expert_intermediate_size, BLOCK)
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    out.set("routing", "aux_loss", "FlintTopKRouter: top-k of the sigmoid scores, no correction bias")
    out.set("router_score_function", "sigmoid", "FlintTopKRouter: sigmoid of the router logits")
    out.set("normalize_expert_weights", hf.norm_topk_prob, context.named("norm_topk_prob"))
    if hf.norm_topk_prob:
        out.set("expert_weights_epsilon", 0.0, "FlintTopKRouter divides by the sum of the chosen scores, without an epsilon")
    out.set("router_dtype", "float32", "FlintTopKRouter computes the router logits in float32 (a float32 weight)")
    out.set("auxiliary_loss_coefficient", 0.0, "transformers adds no load-balancing loss without output_router_logits")


FAMILY = Family(
    model_types=("flint",),
    fields=FlintFields,
    moe_layers=qwen_moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("flint",),
    note=(
        "sigmoid top-k without a correction bias (router in float32), renormalised with norm_topk_prob, one shared expert "
        "of shared_expert_intermediate_size added in full; dense MLPs in mlp_only_layers ([0, 1] by default) and off "
        "decoder_sparse_step; output_router_logits refused (a softmax load-balancing loss)"
    ),
)
