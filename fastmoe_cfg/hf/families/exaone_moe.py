"""K-EXAONE (`exaone_moe`, `ExaoneMoeSparseMoEBlock`): DeepSeek-V3's MoE block, line for line (sigmoid, top-k on
scores + e_score_correction_bias, renormalised × routed_scaling_factor, shared experts), under EXAONE's names
(num_experts, num_shared_experts). MoE layers where `mlp_layer_types` is "sparse" (default: from
first_k_dense_replace on); the checkpoint's own `is_moe_layer` list, which transformers does not read, must agree."""

from __future__ import annotations

from typing import Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import (
    check,
    check_layer_types,
    dense_layer,
    listed_moe_layers,
    sigmoid_routing,
    tensors,
)
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, gated_experts

BLOCK = "ExaoneMoeSparseMoEBlock"


class ExaoneMoeFields(HFFields):
    num_experts: int = hf_field(ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width
    num_shared_experts: int = hf_field(1, ge=0)  # absent fields: ExaoneMoeConfig's defaults
    first_k_dense_replace: int = hf_field(1, ge=0)
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    norm_topk_prob: bool = True
    routed_scaling_factor: Number = 2.5
    n_group: int = hf_field(1, ge=1)
    topk_group: int = hf_field(1, ge=1)
    hidden_act: Activation = "silu"
    is_moe_layer: list[bool] | None = None  # K-EXAONE's own fields, which transformers does not read
    first_last_k_dense_replace: int | None = None
    moe_layer_freq: int | None = None
    scoring_func: str | None = None
    topk_method: str | None = None
    aux_loss_alpha: Number = hf_field(0.0, ge=0)
    seq_aux: bool = False


def convert(out: Conversion, hf: ExaoneMoeFields, context: Context) -> None:
    check(hf, context, name="K-EXAONE")
    check_layer_types(hf, context)
    placed = listed_moe_layers(hf)
    if hf.is_moe_layer is not None:
        theirs = tuple(index for index, moe in enumerate(hf.is_moe_layer) if moe)
        if theirs != placed or len(hf.is_moe_layer) != hf.num_hidden_layers:
            context.problem(
                "is_moe_layer", "disagrees with the MoE layers transformers builds (mlp_layer_types, else first_k_dense_replace): "
                "which layers are MoE is ambiguous; give mlp_layer_types",
            )
    elif hf.first_last_k_dense_replace is not None and hf.mlp_layer_types is None:
        context.problem(
            "first_last_k_dense_replace", "cannot be converted: transformers does not read it (its MoE layers follow "
            "first_k_dense_replace): which layers are MoE is ambiguous; give mlp_layer_types or is_moe_layer",
        )
    if not out.is_moe:
        return dense_layer(out, hf, context)
    shared = hf.num_shared_experts
    out.set("type", "moe", f'{BLOCK}: mlp_layer_types[layer] is "sparse" (default: layer >= first_k_dense_replace)')
    out.set("experts", hf.num_experts + shared, "num_experts + num_shared_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    if shared:
        out.set("shared_experts", shared, f"{context.named('num_shared_experts')}: one MLP of width moe_intermediate_size × num_shared_experts")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    sigmoid_routing(out, hf, context)


FAMILY = Family(
    model_types=("exaone_moe",),
    fields=ExaoneMoeFields,
    moe_layers=listed_moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("exaone_moe",),
    note=(
        "DeepSeek-V3's block (sigmoid, top-k on scores + e_score_correction_bias, renormalised × routed_scaling_factor, "
        "shared experts); MoE layers where mlp_layer_types is sparse (default from first_k_dense_replace)"
    ),
)
