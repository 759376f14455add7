"""DeepSeek-OCR-2's text model (`deepseek_ocr2_text`, `DeepseekOcr2TextMoe`, under `text_config` of `deepseek_ocr2`):
DeepSeek-V2's block, line for line (softmax scores in float32, greedy or group_limited_greedy top-k, never
renormalised, × routed_scaling_factor, n_shared_experts as one MLP), with standard attention instead of MLA. The MoE
layers are those whose mlp_layer_types entry is "sparse": transformers' DeepseekOcr2TextConfig has no default for it
(nor for num_experts_per_tok), so both are required, and a first_k_dense_replace, which it does not read, must agree.
"""

from __future__ import annotations

from typing import Any, Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v2 import DeepseekV2Fields, convert as deepseek_v2_convert, tensors
from fastmoe_cfg.hf.families.deepseek_v3 import check_layer_types
from fastmoe_cfg.hf.fields import hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "DeepseekOcr2TextMoe"
PLACEMENT = 'mlp_layer_types[layer] is "sparse"'


class DeepseekOcr2TextFields(DeepseekV2Fields):
    mlp_layer_types: list[Literal["dense", "sparse"]] = hf_field()  # the decoder layers cannot be built without it
    first_k_dense_replace: int | None = hf_field(None, ge=0)  # not read by transformers' DeepSeek-OCR-2


def listed_layers(hf: Any) -> tuple[int, ...]:
    return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")


def ocr_converter(block: str, name: str, placement: str, moe_layers):
    """DeepSeek-V2's conversion of a block placed by mlp_layer_types; a first_k_dense_replace that transformers does not
    read beside it must place the layers alike."""

    def convert(out: Conversion, hf: Any, context: Context) -> None:
        check_layer_types(hf, context)
        if hf.first_k_dense_replace is not None and hf.mlp_layer_types is not None:
            expected = tuple(range(hf.first_k_dense_replace, hf.num_hidden_layers))
            context.unsupported_unless(
                "first_k_dense_replace", lambda value: expected == moe_layers(hf),
                f"transformers' {name} places the MoE layers by mlp_layer_types ({list(moe_layers(hf))}), not by it",
            )
        deepseek_v2_convert(out, hf, context)
        if out.is_moe and "type" in out.data:
            out.set("type", "moe", f"{block}: {placement}")

    return convert


FAMILY = Family(
    model_types=("deepseek_ocr2_text",),
    fields=DeepseekOcr2TextFields,
    moe_layers=listed_layers,
    convert=ocr_converter(BLOCK, "DeepSeek-OCR-2", PLACEMENT, listed_layers),
    tensors=tensors,
    block=BLOCK,
    wrappers={"deepseek_ocr2": "text_config"},
    hf_modules=("deepseek_ocr2",),
    note=(
        "text_config of deepseek_ocr2: DeepSeek-V2's block (softmax top-k, greedy or group_limited_greedy by each group's max, "
        "never renormalised, × routed_scaling_factor, shared experts); MoE layers from mlp_layer_types (required)"
    ),
)
