"""Qwen4-Exp text model (`qwen4_exp_text`, `Qwen4ExpTextSparseMoeBlock`, under `text_config` of the multimodal
`qwen4_exp`): Qwen3-Next's block (softmax top-k, renormalised with norm_topk_prob, true by default; one shared expert
× sigmoid(shared_expert_gate(x))) in every decoder layer. The decoder layer's hyper-connections (mlp_hyper_connection)
mix the residual streams around the block, as norms would: outside it.

transformers' Qwen4-Exp reads no mlp_only_layers or decoder_sparse_step: a config.json that sets them to other values
than its layout (none, 1) is refused rather than read two ways.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.qwen2_moe import shared_gated_expert, tensors
from fastmoe_cfg.hf.families.qwen3_5_moe import Qwen35MoeFields
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, gated_experts, routed_softmax

BLOCK = "Qwen4ExpTextSparseMoeBlock"


class Qwen4ExpTextFields(Qwen35MoeFields):
    norm_topk_prob: bool = True  # Qwen4ExpTextConfig's default, read by its router


def convert(out: Conversion, hf: Qwen4ExpTextFields, context: Context) -> None:
    context.unsupported_unless("mlp_only_layers", lambda value: value == [], "transformers' Qwen4-Exp model has an MoE block in every decoder layer")
    context.unsupported_unless("decoder_sparse_step", lambda value: value == 1, "transformers' Qwen4-Exp model has an MoE block in every decoder layer")
    shared_gated_expert(out, hf)
    out.set("type", "moe", f"{BLOCK} in every decoder layer")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=hf.norm_topk_prob, normalize_source=context.named("norm_topk_prob"))
    aux_loss(out, context, hf.router_aux_loss_coef)


FAMILY = Family(
    model_types=("qwen4_exp_text",),
    fields=Qwen4ExpTextFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    wrappers={"qwen4_exp": "text_config"},
    hf_modules=("qwen4_exp",),
    note="text_config of qwen4_exp: Qwen3-Next's block (softmax top-k, norm_topk_prob true by default, shared expert × sigmoid gate) in every decoder layer",
)
