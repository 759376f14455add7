"""dots.llm1 (`dots1`, `Dots1MoE`): DeepSeek-V3's MoE block, line for line (sigmoid, top-k on scores +
e_score_correction_bias, renormalised with norm_topk_prob × routed_scaling_factor, n_shared_experts), with dots'
defaults (no groups, not renormalised, × 1.0, no dense layer); dense MLPs before first_k_dense_replace."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import DeepseekV3Fields, converter, moe_layers, tensors
from fastmoe_cfg.hf.fields import Number, hf_field

BLOCK = "Dots1MoE"


class Dots1Fields(DeepseekV3Fields):
    n_shared_experts: int = hf_field(ge=0)  # Dots1Config's default is None, which its block cannot build with
    first_k_dense_replace: int = hf_field(0, ge=0)  # Dots1Config's defaults
    norm_topk_prob: bool = False
    routed_scaling_factor: Number = 1.0
    n_group: int = hf_field(1, ge=1)
    topk_group: int = hf_field(1, ge=1)


FAMILY = Family(
    model_types=("dots1",),
    fields=Dots1Fields,
    moe_layers=moe_layers,
    convert=converter(BLOCK, "dots.llm1"),
    tensors=tensors,
    block=BLOCK,
    hf_modules=("dots1",),
    note=(
        "DeepSeek-V3's block (sigmoid, top-k on scores + e_score_correction_bias, norm_topk_prob, × routed_scaling_factor, "
        "shared experts); dense MLPs before first_k_dense_replace"
    ),
)
