"""DeepSeek-V3.2 (`DeepseekV32MoE`): DeepSeek-V3's MoE block, line for line (sigmoid, group-limited top-k on scores +
e_score_correction_bias, renormalised × routed_scaling_factor, n_shared_experts); its sparse attention (the indexer)
is outside the MLP. The MoE layers are those whose `mlp_layer_types` entry is "sparse" (default: from
first_k_dense_replace on)."""

from __future__ import annotations

from typing import Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import (
    DeepseekV3Fields,
    check_layer_types,
    converter,
    listed_moe_layers,
    tensors,
)
from fastmoe_cfg.hf.fields import hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

PLACEMENT = 'mlp_layer_types[layer] is "sparse" (default: layer >= first_k_dense_replace)'


class DeepseekV32Fields(DeepseekV3Fields):
    n_routed_experts: int = hf_field(names=("n_routed_experts", "num_local_experts", "num_experts"), ge=1)
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    mlp_bias: bool = False


def layers_and_bias(hf, context: Context) -> None:
    """What DeepSeek-V3.2-like configs add: the layer list, and an mlp_bias that transformers' MLPs ignore."""
    check_layer_types(hf, context)
    context.unsupported_unless(
        "mlp_bias", lambda value: value is False,
        "transformers builds this family's MLPs and experts without biases whatever mlp_bias says: whether the "
        "checkpoint has biases is unclear; set it to false",
    )


def sparse_converter(block: str, name: str):
    """DeepSeek-V3's conversion, with the MoE layers given by mlp_layer_types."""
    base = converter(block, name, PLACEMENT)

    def convert(out: Conversion, hf: DeepseekV32Fields, context: Context) -> None:
        layers_and_bias(hf, context)
        base(out, hf, context)

    return convert


FAMILY = Family(
    model_types=("deepseek_v32",),
    fields=DeepseekV32Fields,
    moe_layers=listed_moe_layers,
    convert=sparse_converter("DeepseekV32MoE", "DeepSeek-V3.2"),
    tensors=tensors,
    block="DeepseekV32MoE",
    hf_modules=("deepseek_v32",),
    note=(
        "DeepSeek-V3's block (sigmoid, group-limited top-k on scores + e_score_correction_bias, renormalised × "
        "routed_scaling_factor, shared experts); MoE layers where mlp_layer_types is sparse (default from first_k_dense_replace)"
    ),
)
