"""Qwen3-VL-MoE text model (`Qwen3VLMoeTextSparseMoeBlock`, `qwen3_vl_moe_text`, under `text_config` of the
multimodal `qwen3_vl_moe`): Qwen3-MoE's block, renormalised always; MoE layers as Qwen's (mlp_only_layers,
decoder_sparse_step).

transformers' block reads no norm_topk_prob: a config.json that sets it to false is refused.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.mixtral import router_and_experts
from fastmoe_cfg.hf.families.qwen3_moe import SPARSE, QwenMoeFields, dense_layer, qwen_moe_layers
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, gated_experts, routed_softmax


class Qwen3VLMoeFields(QwenMoeFields):
    norm_topk_prob: bool | None = None  # not read by transformers' Qwen3-VL-MoE: accepted when true


def convert(out: Conversion, hf: Qwen3VLMoeFields, context: Context) -> None:
    context.unsupported_unless("norm_topk_prob", lambda value: value is True, "transformers' Qwen3-VL-MoE always renormalises the top-k weights")
    if not out.is_moe:
        return dense_layer(out, hf, context)
    out.set("type", "moe", SPARSE)
    out.set("experts", hf.num_experts, "num_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=True, normalize_source="Qwen3VLMoeTextTopKRouter renormalises the top-k weights")
    aux_loss(out, context, hf.router_aux_loss_coef)


FAMILY = Family(
    model_types=("qwen3_vl_moe_text",),
    fields=Qwen3VLMoeFields,
    moe_layers=qwen_moe_layers,
    convert=convert,
    tensors=router_and_experts,
    block="Qwen3VLMoeTextSparseMoeBlock",
    wrappers={"qwen3_vl_moe": "text_config"},
    hf_modules=("qwen3_vl_moe",),
    note="text_config of qwen3_vl_moe: Qwen3-MoE's block, always renormalised; dense MLPs in mlp_only_layers and off decoder_sparse_step",
)
