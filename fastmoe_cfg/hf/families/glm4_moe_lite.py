"""GLM-4.7-Flash (`glm4_moe_lite`, `Glm4MoeLiteMoE`): DeepSeek-V3's MoE block, line for line (sigmoid, top-k on
scores + e_score_correction_bias, renormalised × routed_scaling_factor, n_shared_experts), with its own defaults
(× 1.8, no groups). The MoE layers are those whose `mlp_layer_types` entry is "sparse"; without it, every layer but
the first (transformers' Glm4MoeLiteConfig has no first_k_dense_replace: a config.json's value must agree)."""

from __future__ import annotations

from typing import Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import DeepseekV3Fields, check_layer_types, converter, tensors
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "Glm4MoeLiteMoE"


class Glm4MoeLiteFields(DeepseekV3Fields):
    routed_scaling_factor: Number = 1.8  # Glm4MoeLiteConfig's defaults
    n_group: int = hf_field(1, ge=1)
    topk_group: int = hf_field(1, ge=1)
    first_k_dense_replace: int | None = hf_field(None, ge=0)  # not read by transformers
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None


def moe_layers(hf: Glm4MoeLiteFields) -> tuple[int, ...]:
    if hf.mlp_layer_types is None:
        return tuple(range(1, hf.num_hidden_layers))
    return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")


base = converter(BLOCK, "GLM-4.7-Flash", 'mlp_layer_types[layer] is "sparse" (default: every layer but the first)')


def convert(out: Conversion, hf: Glm4MoeLiteFields, context: Context) -> None:
    check_layer_types(hf, context)
    if hf.mlp_layer_types is None:
        context.unsupported_unless(
            "first_k_dense_replace", lambda value: value == 1,
            "transformers' Glm4MoeLite ignores it: without mlp_layer_types its first layer alone is dense; "
            "give mlp_layer_types, or set first_k_dense_replace to 1",
        )
    base(out, hf, context)


FAMILY = Family(
    model_types=("glm4_moe_lite",),
    fields=Glm4MoeLiteFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("glm4_moe_lite",),
    note=(
        "DeepSeek-V3's block (sigmoid, top-k on scores + e_score_correction_bias, renormalised × routed_scaling_factor, "
        "shared experts); MoE layers where mlp_layer_types is sparse (default: all but layer 0)"
    ),
)
