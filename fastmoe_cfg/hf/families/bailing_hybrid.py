"""Ling 2.5 / 3.0 (`bailing_hybrid`, `BailingHybridMoE`): DeepSeek-V3's MoE block, line for line (sigmoid,
group-limited top-k on scores + e_score_correction_bias, renormalised × routed_scaling_factor, n_shared_experts); its
KDA / MLA token mixers are outside the MLP. MoE layers where mlp_layer_types is "sparse" (default: from
first_k_dense_replace on, 2 by default); transformers' attribute_map spellings as Kimi-Linear's.

Ling's config.json also carries the settings of its own code, which transformers' block does not read: they are
refused unless they say what the block does (score_function sigmoid, a shared expert of moe_intermediate_size ×
num_shared_experts, the bias, the scaling and the shared expert enabled).
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import listed_moe_layers, tensors
from fastmoe_cfg.hf.families.kimi_linear import KimiLinearFields, scored_converter
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "BailingHybridMoE"


class BailingHybridFields(KimiLinearFields):
    n_group: int = hf_field(8, names=("n_group", "num_expert_group"), ge=1)  # BailingHybridConfig's defaults
    topk_group: int = hf_field(4, ge=1)
    routed_scaling_factor: Number = 2.5
    first_k_dense_replace: int = hf_field(2, ge=0)
    # Ling's own keys, not read by transformers' BailingHybrid.
    score_function: str | None = None
    moe_shared_expert_intermediate_size: int | None = None
    moe_router_enable_expert_bias: bool | None = None
    moe_router_enable_routed_scaling: bool | None = None
    moe_router_enable_shared_expert: bool | None = None


base = scored_converter(BLOCK, "Ling (bailing_hybrid)")


def convert(out: Conversion, hf: BailingHybridFields, context: Context) -> None:
    why = f"transformers' {BLOCK}"
    context.unsupported_unless("score_function", lambda value: value == "sigmoid", f"{why} scores with sigmoid")
    shared = hf.moe_intermediate_size * hf.n_shared_experts
    context.unsupported_unless(
        "moe_shared_expert_intermediate_size", lambda value: value == shared,
        f"{why} builds its shared expert of moe_intermediate_size × num_shared_experts ({shared}) whatever this says",
    )
    context.unsupported_unless("moe_router_enable_expert_bias", lambda value: value is True, f"{why} always adds e_score_correction_bias for the choice")
    context.unsupported_unless(
        "moe_router_enable_routed_scaling", lambda value: value is True or hf.routed_scaling_factor == 1,
        f"{why} always multiplies the weights by routed_scaling_factor ({hf.routed_scaling_factor})",
    )
    context.unsupported_unless(
        "moe_router_enable_shared_expert", lambda value: value is True or hf.n_shared_experts == 0,
        f"{why} always runs its num_shared_experts ({hf.n_shared_experts}) shared experts",
    )
    base(out, hf, context)


FAMILY = Family(
    model_types=("bailing_hybrid",),
    fields=BailingHybridFields,
    moe_layers=listed_moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("bailing_hybrid",),
    note=(
        "DeepSeek-V3's block (sigmoid, group-limited top-k on scores + e_score_correction_bias, renormalised × "
        "routed_scaling_factor, shared experts); MoE layers where mlp_layer_types is sparse (default from first_k_dense_replace, 2); "
        "Ling's own router keys refused unless they agree"
    ),
)
