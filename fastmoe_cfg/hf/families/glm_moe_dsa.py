"""GLM-5 (`glm_moe_dsa`, `GlmMoeDsaMoE`): DeepSeek-V3's MoE block, line for line (sigmoid, top-k on scores +
e_score_correction_bias, renormalised × routed_scaling_factor, n_shared_experts), as DeepSeek-V3.2 places it
(`mlp_layer_types`, default from first_k_dense_replace on), with GLM-5's defaults (no groups); its sparse attention
(the indexer) is outside the MLP."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import listed_moe_layers, tensors
from fastmoe_cfg.hf.families.deepseek_v32 import DeepseekV32Fields, sparse_converter
from fastmoe_cfg.hf.fields import hf_field

BLOCK = "GlmMoeDsaMoE"


class GlmMoeDsaFields(DeepseekV32Fields):
    n_group: int = hf_field(1, ge=1)  # GlmMoeDsaConfig's defaults
    topk_group: int = hf_field(1, ge=1)


FAMILY = Family(
    model_types=("glm_moe_dsa",),
    fields=GlmMoeDsaFields,
    moe_layers=listed_moe_layers,
    convert=sparse_converter(BLOCK, "GLM-5"),
    tensors=tensors,
    block=BLOCK,
    hf_modules=("glm_moe_dsa",),
    note=(
        "DeepSeek-V3's block (sigmoid, top-k on scores + e_score_correction_bias, renormalised × routed_scaling_factor, "
        "shared experts); MoE layers where mlp_layer_types is sparse (default from first_k_dense_replace)"
    ),
)
