"""Kimi-Linear (`kimi_linear`, `KimiLinearMoE`): DeepSeek-V3's MoE block, line for line (sigmoid, group-limited top-k
on scores + e_score_correction_bias, renormalised × routed_scaling_factor, n_shared_experts); its KDA / MLA token
mixers are outside the MLP. The MoE layers are those whose mlp_layer_types entry is "sparse" (default: from
first_k_dense_replace on, 1 by default). Its config.json spells the DeepSeek fields as transformers' attribute_map
reads them: num_experts, num_experts_per_token, num_shared_experts, moe_renormalize, num_expert_group.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import listed_moe_layers, tensors
from fastmoe_cfg.hf.families.deepseek_v32 import DeepseekV32Fields, sparse_converter
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "KimiLinearMoE"


class KimiLinearFields(DeepseekV32Fields):
    num_experts_per_tok: int = hf_field(names=("num_experts_per_tok", "num_experts_per_token"), ge=1)
    n_shared_experts: int = hf_field(1, names=("n_shared_experts", "num_shared_experts"), ge=0)  # KimiLinearConfig's defaults
    norm_topk_prob: bool = hf_field(True, names=("norm_topk_prob", "moe_renormalize"))
    n_group: int = hf_field(1, names=("n_group", "num_expert_group"), ge=1)
    topk_group: int = hf_field(1, ge=1)
    routed_scaling_factor: Number = 2.446
    first_k_dense_replace: int = hf_field(1, ge=0)
    moe_router_activation_func: str | None = None  # Moonshot's name of the score function, not read by transformers


def scored_converter(block: str, name: str):
    """DeepSeek-V3.2's conversion (mlp_layer_types, DeepSeek's own keys checked), with the score function's other name."""
    base = sparse_converter(block, name)

    def convert(out: Conversion, hf: KimiLinearFields, context: Context) -> None:
        context.unsupported_unless("moe_router_activation_func", lambda value: value == "sigmoid", f"{block} scores with sigmoid")
        base(out, hf, context)

    return convert


FAMILY = Family(
    model_types=("kimi_linear",),
    fields=KimiLinearFields,
    moe_layers=listed_moe_layers,
    convert=scored_converter(BLOCK, "Kimi-Linear"),
    tensors=tensors,
    block=BLOCK,
    hf_modules=("kimi_linear",),
    note=(
        "DeepSeek-V3's block (sigmoid, group-limited top-k on scores + e_score_correction_bias, renormalised × "
        "routed_scaling_factor, shared experts); MoE layers where mlp_layer_types is sparse (default from first_k_dense_replace, 1)"
    ),
)
