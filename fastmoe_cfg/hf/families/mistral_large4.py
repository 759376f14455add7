"""Mistral Large 4 (`mistral_large4_text`, `MistralLarge4TextMoE`, the text model under the `text_config` of
`mistral_large4`): Mistral 4's routing with the router linear in float32 and the top-k weights always renormalised
(+1e-20): softmax scores, group-limited by the top-2 sum when n_group > 1, × routed_scaling_factor, shared experts.
MoE layers where `mlp_layer_types` is "sparse" (default: from first_k_dense_replace on)."""

from __future__ import annotations

from typing import Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import (
    check_layer_types,
    dense_layer,
    groups,
    listed_moe_layers,
    routed_experts,
)
from fastmoe_cfg.hf.families.mistral4 import Mistral4Fields, tensors
from fastmoe_cfg.hf.fields import hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "MistralLarge4TextMoE"


class MistralLarge4TextFields(Mistral4Fields):
    n_routed_experts: int = hf_field(names=("n_routed_experts", "num_local_experts", "num_experts"), ge=1)
    first_k_dense_replace: int = hf_field(1, ge=0)  # MistralLarge4TextConfig's default
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    norm_topk_prob: bool | None = None  # not a field of MistralLarge4TextConfig: its router always renormalises


def convert(out: Conversion, hf: MistralLarge4TextFields, context: Context) -> None:
    check_layer_types(hf, context)
    context.unsupported_unless(
        "moe_layer_freq", lambda value: value == 1,
        "transformers places the MoE layers by mlp_layer_types: which layers are MoE is ambiguous; set it to 1",
    )
    context.unsupported_unless("scoring_func", lambda value: value == "softmax", "Mistral Large 4 scores with softmax")
    context.unsupported_unless("norm_topk_prob", lambda value: value is True, "transformers' Mistral Large 4 always renormalises the top-k weights")
    if not out.is_moe:
        return dense_layer(out, hf, context)
    routed_experts(out, hf, context, block=BLOCK, placement='mlp_layer_types[layer] is "sparse" (default: layer >= first_k_dense_replace)')
    out.set("routing", "aux_loss", "MistralLarge4TextTopkRouter: top-k of the softmax scores, no correction bias")
    out.set("router_score_function", "softmax", "softmax of the router logits in float32")
    out.set("normalize_expert_weights", True, "MistralLarge4TextTopkRouter always renormalises the top-k weights")
    out.set("routed_scaling_factor", hf.routed_scaling_factor, context.named("routed_scaling_factor"))
    groups(out, hf, context)
    out.set("router_dtype", "float32", "MistralLarge4TextTopkRouter runs the router linear in float32")
    out.set("auxiliary_loss_coefficient", 0.0, "transformers' Mistral Large 4 adds no load-balancing loss")


FAMILY = Family(
    model_types=("mistral_large4_text",),
    fields=MistralLarge4TextFields,
    moe_layers=listed_moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    wrappers={"mistral_large4": "text_config"},
    hf_modules=("mistral_large4",),
    note=(
        "softmax top-k (router in float32), group-limited (top-2 sum) when n_group > 1, always renormalised × "
        "routed_scaling_factor, shared experts; MoE layers where mlp_layer_types is sparse; text_config of mistral_large4"
    ),
)
