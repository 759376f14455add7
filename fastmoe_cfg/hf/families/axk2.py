"""A.X-K2 (SK Telecom, `AXK2MoE`): DeepSeek-V3's MoE block (sigmoid, top-k on scores + e_score_correction_bias,
renormalised × routed_scaling_factor, n_shared_experts) without A.X-K1's output norm; MoE layers as A.X-K1 places them.
Its gated RMSNorms (input_layernorm, and post_attention_layernorm on MoE layers) are the decoder layer's, outside the block.

Groups (n_group, set by the larger releases; None in A.X-K2-Light) are refused: `AXK2TopkRouter.apply_group_scoring`
fills the scores of the groups it drops with 0.0, not -inf, so an expert of a dropped group is still chosen over a
kept expert whose biased score is below 0, which our group-limited routing never does.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.axk1 import AXK1Fields, legacy_converter, legacy_moe_layers
from fastmoe_cfg.hf.families.deepseek_v3 import tensors
from fastmoe_cfg.hf.fields import hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "AXK2MoE"
GROUPS = (
    "AXK2TopkRouter fills the scores of the groups it drops with 0.0, not -inf: an expert of a dropped group still beats "
    "a kept expert whose biased score is below 0, which our group-limited routing (expert_groups) never does; "
    "only n_group null or 1 converts"
)


class AXK2Fields(AXK1Fields):
    n_group: int | None = hf_field(None, ge=1)  # AXK2Config's defaults: no groups
    topk_group: int | None = hf_field(None, ge=1)


base = legacy_converter(BLOCK, "A.X-K2")


def convert(out: Conversion, hf: AXK2Fields, context: Context) -> None:
    if hf.n_group is not None and hf.n_group > 1:
        context.problem("n_group", f"{hf.n_group} cannot be converted: {GROUPS}")
        return
    base(out, hf.model_copy(update={"n_group": 1, "topk_group": 1}), context)


FAMILY = Family(
    model_types=("axk2",),
    fields=AXK2Fields,
    moe_layers=legacy_moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("axk2",),
    note=(
        "DeepSeek-V3's block without groups (sigmoid, top-k on scores + e_score_correction_bias, renormalised × "
        "routed_scaling_factor, shared experts); n_group > 1 refused (dropped groups' scores are filled with 0.0, not -inf); "
        "MoE layers from mlp_layer_types (default: first_k_dense_replace 1, moe_layer_freq 1)"
    ),
)
