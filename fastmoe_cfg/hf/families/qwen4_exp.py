"""Qwen4-Exp text model (`Qwen4ExpTextSparseMoeBlock`, `qwen4_exp_text`, also under `text_config` of the multimodal
`qwen4_exp`): Qwen3-Next's block (softmax top-k, renormalised with norm_topk_prob, true by default; one shared expert
× sigmoid(shared_expert_gate(x))) in every decoder layer. The decoder layer's hyper-connections (mlp_hyper_connection:
the block's input mixed from hc_count streams, its output injected back into them) and PLE are outside the block.

transformers' Qwen4-Exp reads no mlp_only_layers or decoder_sparse_step: refused unless they agree (none, 1).
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.qwen2_moe import shared_gated_expert, tensors
from fastmoe_cfg.hf.families.qwen3_5_moe import Qwen35MoeFields, fixed_qwen_settings
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, gated_experts, routed_softmax


class Qwen4ExpFields(Qwen35MoeFields):
    norm_topk_prob: bool = True  # read by Qwen4ExpTextTopKRouter; Qwen4ExpTextConfig's default


def convert(out: Conversion, hf: Qwen4ExpFields, context: Context) -> None:
    fixed_qwen_settings(context, "Qwen4-Exp", normalized=False)
    shared_gated_expert(out, hf)
    out.set("type", "moe", "Qwen4ExpTextSparseMoeBlock in every decoder layer")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=hf.norm_topk_prob, normalize_source=context.named("norm_topk_prob"))
    aux_loss(out, context, hf.router_aux_loss_coef)


FAMILY = Family(
    model_types=("qwen4_exp_text",),
    fields=Qwen4ExpFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block="Qwen4ExpTextSparseMoeBlock",
    wrappers={"qwen4_exp": "text_config"},
    hf_modules=("qwen4_exp",),
    note="Qwen3-Next's block (shared expert × sigmoid gate, norm_topk_prob true by default) in every decoder layer; the hyper-connections around it are outside the block",
)
