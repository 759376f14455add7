"""Beam (Reflection, `BeamMoE`): DeepSeek-V3's MoE block without shared experts. `BeamTopKRouter` (float32) takes the
sigmoid, picks the group-limited top-k of scores + e_score_correction_bias, renormalises with norm_topk_prob; `BeamMoE`
multiplies the weighted sum of the experts by routed_scaling_factor, the same product as scaling each weight.
MoE layers where mlp_layer_types is "sparse" (default: all but the first three).

`BeamExperts` and the dense `BeamMLP` evaluate silu(gate) · up in float32 and cast back: the same values in float32,
a rounding difference in low precision. The decoder layer's pre_ / post_feedforward_layernorm and its depth-scaled
residual are outside the block.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.hy_v3 import listed_or_all_but
from fastmoe_cfg.hf.families.mimo_v2_flash import MiMoV2FlashFields, routed_only_converter, tensors
from fastmoe_cfg.hf.fields import Number, hf_field

BLOCK = "BeamMoE"


class BeamFields(MiMoV2FlashFields):
    n_group: int = hf_field(8, ge=1)  # BeamConfig's defaults
    topk_group: int = hf_field(4, ge=1)
    routed_scaling_factor: Number = 2.5


FAMILY = Family(
    model_types=("beam",),
    fields=BeamFields,
    moe_layers=listed_or_all_but(3),
    convert=routed_only_converter(BLOCK, "Beam", 3, 'mlp_layer_types[layer] is "sparse" (default: all but the first three)'),
    tensors=tensors,
    block=BLOCK,
    hf_modules=("beam",),
    note=(
        "DeepSeek-V3's block without shared experts (sigmoid, group-limited top-k on scores + e_score_correction_bias, "
        "norm_topk_prob, × routed_scaling_factor after the sum: the same product); GLU in float32 (equal in float32); "
        "MoE layers from mlp_layer_types (default all but layers 0-2)"
    ),
)
