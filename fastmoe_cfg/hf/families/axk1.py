"""A.X-K1 (SK Telecom, `AXK1MoE`): DeepSeek-V3's MoE block (sigmoid, group-limited top-k on scores +
e_score_correction_bias, renormalised × routed_scaling_factor, n_shared_experts) followed by an RMSNorm of its output,
`post_mlp_layernorm` (rms_norm_eps): our post_norm. The MoE layers are those whose mlp_layer_types entry is "sparse";
without the list, transformers derives it from the legacy first_k_dense_replace (default 1) and moe_layer_freq
(default 1): layer i is sparse when i >= first_k_dense_replace and i % moe_layer_freq == 0.
"""

from __future__ import annotations

from typing import Any, Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import DeepseekV3Fields, check_layer_types, dense_layer, routed_experts, sigmoid_routing, tensors as deepseek_tensors
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion
from fastmoe_cfg.hf.weights import Tensors

BLOCK = "AXK1MoE"
PLACEMENT = 'mlp_layer_types[layer] is "sparse" (default: layer >= first_k_dense_replace and layer % moe_layer_freq == 0)'


class AXK1Fields(DeepseekV3Fields):
    first_k_dense_replace: int = hf_field(1, ge=0)  # AXK1Config's legacy defaults
    moe_layer_freq: int = hf_field(1, ge=1)
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    rms_norm_eps: Number = hf_field(1e-6, gt=0)


def legacy_moe_layers(hf: Any) -> tuple[int, ...]:
    """mlp_layer_types' "sparse" layers; without it, as transformers derives it from first_k_dense_replace and
    moe_layer_freq (an integer: every moe_layer_freq-th layer; a list: its nonzero entries)."""
    if hf.mlp_layer_types is not None:
        return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")
    freq = hf.moe_layer_freq
    return tuple(
        index for index in range(hf.first_k_dense_replace, hf.num_hidden_layers)
        if (bool(freq[index]) if isinstance(freq, list) else index % freq == 0)
    )


def check_scoring(context: Context, name: str) -> None:
    """DeepSeek's own scoring_func / topk_method keys, which transformers does not read: refused unless they agree."""
    context.unsupported_unless("scoring_func", lambda value: value == "sigmoid", f"{name} scores with sigmoid")
    context.unsupported_unless("topk_method", lambda value: value == "noaux_tc", f"{name} routes with noaux_tc (group-limited, aux-free bias)")


def legacy_converter(block: str, name: str, extra=None):
    """The `convert` of a DeepSeek-V3 block placed by mlp_layer_types or the legacy first_k_dense_replace / moe_layer_freq;
    `extra(out, hf, context)` adds what the family's block has beyond DeepSeek-V3's."""

    def convert(out: Conversion, hf: Any, context: Context) -> None:
        check_layer_types(hf, context)
        check_scoring(context, name)
        if not out.is_moe:
            return dense_layer(out, hf, context)
        routed_experts(out, hf, context, block=block, placement=PLACEMENT)
        sigmoid_routing(out, hf, context)
        if extra is not None:
            extra(out, hf, context)

    return convert


def post_norm(out: Conversion, hf: AXK1Fields, context: Context) -> None:
    out.set("post_norm", {"type": "rms_norm", "epsilon": hf.rms_norm_eps}, f"post_mlp_layernorm: an RMSNorm of the block's output ({context.named('rms_norm_eps')})")


def tensors(config) -> list[Tensors]:
    return [*deepseek_tensors(config), Tensors(("post_mlp_layernorm.weight",), "post_norm.weight")]


FAMILY = Family(
    model_types=("axk1",),
    fields=AXK1Fields,
    moe_layers=legacy_moe_layers,
    convert=legacy_converter(BLOCK, "A.X-K1", post_norm),
    tensors=tensors,
    block=BLOCK,
    hf_modules=("axk1",),
    note=(
        "DeepSeek-V3's block (sigmoid, group-limited top-k on scores + e_score_correction_bias, renormalised × "
        "routed_scaling_factor, shared experts) then post_mlp_layernorm (our post_norm); MoE layers from mlp_layer_types "
        "(default: first_k_dense_replace 1, moe_layer_freq 1)"
    ),
)
