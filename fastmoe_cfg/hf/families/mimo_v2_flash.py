"""MiMo-V2-Flash (Xiaomi, `MiMoV2FlashMoE`): DeepSeek-V3's MoE block without shared experts (sigmoid, group-limited
top-k on scores + e_score_correction_bias, renormalised × routed_scaling_factor; the hub's null routed_scaling_factor
is 1.0, as transformers reads it). MoE layers where mlp_layer_types is "sparse" (default: every layer but the first).

The hub config.json places the MoE layers with its own moe_layer_freq list (and DeepSeek's first_k_dense_replace, in
other files), which transformers does not read: refused unless they place the layers as transformers does.
"""

from __future__ import annotations

from typing import Any, Callable

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.axk1 import check_scoring
from fastmoe_cfg.hf.families.deepseek_v3 import dense_layer, routed_experts, sigmoid_routing
from fastmoe_cfg.hf.families.deepseek_v32 import DeepseekV32Fields, layers_and_bias
from fastmoe_cfg.hf.families.hy_v3 import ignored_first_k_dense, listed_or_all_but
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion
from fastmoe_cfg.hf.weights import Tensors, fused_experts

BLOCK = "MiMoV2FlashMoE"


class MiMoV2FlashFields(DeepseekV32Fields):
    n_shared_experts: int = hf_field(0, ge=0)  # not read by transformers: MiMoV2FlashMoE has none
    routed_scaling_factor: Number = 1.0  # MiMoV2FlashConfig's defaults
    n_group: int = hf_field(1, ge=1)
    topk_group: int = hf_field(1, ge=1)
    first_k_dense_replace: int | None = hf_field(None, ge=0)  # not read by transformers
    moe_layer_freq: int | list[int] | None = None  # not read by transformers


def check_placement(hf: Any, context: Context, moe_layers: tuple[int, ...], block: str) -> None:
    """moe_layer_freq, which transformers does not read: an integer must be 1 (with first_k_dense_replace, checked
    apart), a list must mark the MoE layers transformers builds (nonzero) and only those."""
    freq = hf.moe_layer_freq
    if isinstance(freq, list):
        expected = [int(index in moe_layers) for index in range(hf.num_hidden_layers)]
        if [int(bool(value)) for value in freq] != expected:
            context.problem(
                "moe_layer_freq",
                f"cannot be converted: transformers' {block} model ignores it and makes layers {list(moe_layers)} MoE "
                "(mlp_layer_types, or its default): the list must mark those layers (nonzero) and only those",
            )
    else:
        context.unsupported_unless(
            "moe_layer_freq", lambda value: value == 1, f"transformers' {block} model ignores it: set it to 1, or give mlp_layer_types"
        )


def routed_only_converter(block: str, name: str, first: int, placement: str) -> Callable[[Conversion, Any, Context], None]:
    """The `convert` of DeepSeek-V3's block without shared experts, placed by mlp_layer_types (default: from `first` on)."""
    moe_layers = listed_or_all_but(first)

    def convert(out: Conversion, hf: Any, context: Context) -> None:
        layers_and_bias(hf, context)
        ignored_first_k_dense(hf, context, name, first)
        check_placement(hf, context, moe_layers(hf), name)
        check_scoring(context, name)
        context.unsupported_unless("n_shared_experts", lambda value: value == 0, f"transformers' {block} has no shared experts")
        if not out.is_moe:
            return dense_layer(out, hf, context)
        routed_experts(out, hf.model_copy(update={"n_shared_experts": 0}), context, block=block, placement=placement)
        sigmoid_routing(out, hf, context)

    return convert


def tensors(config) -> list[Tensors]:
    return [Tensors(("gate.weight",), "router.weight"), Tensors(("gate.e_score_correction_bias",), "router_correction_bias"), *fused_experts()]


FAMILY = Family(
    model_types=("mimo_v2_flash",),
    fields=MiMoV2FlashFields,
    moe_layers=listed_or_all_but(1),
    convert=routed_only_converter(BLOCK, "MiMoV2Flash", 1, 'mlp_layer_types[layer] is "sparse" (default: every layer but the first)'),
    tensors=tensors,
    block=BLOCK,
    hf_modules=("mimo_v2_flash",),
    note=(
        "DeepSeek-V3's block without shared experts (sigmoid, group-limited top-k on scores + e_score_correction_bias, "
        "renormalised × routed_scaling_factor, null = 1); MoE layers from mlp_layer_types (default all but layer 0); "
        "the hub's moe_layer_freq list refused unless it agrees"
    ),
)
