"""Unlimited-OCR's text model (`unlimited_ocr_text`, `UnlimitedOcrTextMoe`, under `text_config` of `unlimited_ocr`):
DeepSeek-OCR-2's block, line for line (DeepSeek-V2's: softmax top-k, greedy or group_limited_greedy, never
renormalised, × routed_scaling_factor, shared experts). The MoE layers are those whose mlp_layer_types entry is
"sparse"; without it, transformers derives it from first_k_dense_replace (default 1). The original checkpoint's
layout (the text model under `language_config`) is not read: transformers re-saves it under text_config.
"""

from __future__ import annotations

from typing import Any, Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_ocr2 import DeepseekOcr2TextFields, ocr_converter
from fastmoe_cfg.hf.families.deepseek_v2 import tensors
from fastmoe_cfg.hf.fields import hf_field

BLOCK = "UnlimitedOcrTextMoe"


class UnlimitedOcrTextFields(DeepseekOcr2TextFields):
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    first_k_dense_replace: int = hf_field(1, ge=0)  # read by UnlimitedOcrTextConfig without mlp_layer_types
    n_group: int | None = hf_field(1, ge=1)  # UnlimitedOcrTextConfig's defaults
    topk_group: int | None = hf_field(1, ge=1)


def moe_layers(hf: Any) -> tuple[int, ...]:
    if hf.mlp_layer_types is None:
        return tuple(range(hf.first_k_dense_replace, hf.num_hidden_layers))
    return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")


FAMILY = Family(
    model_types=("unlimited_ocr_text",),
    fields=UnlimitedOcrTextFields,
    moe_layers=moe_layers,
    convert=ocr_converter(BLOCK, "Unlimited-OCR", 'mlp_layer_types[layer] is "sparse" (default: layer >= first_k_dense_replace)', moe_layers),
    tensors=tensors,
    block=BLOCK,
    wrappers={"unlimited_ocr": "text_config"},
    hf_modules=("unlimited_ocr",),
    note=(
        "text_config of unlimited_ocr: DeepSeek-V2's block (softmax top-k, greedy or group_limited_greedy, never renormalised, "
        "× routed_scaling_factor, shared experts); MoE layers from mlp_layer_types or first_k_dense_replace (default 1)"
    ),
)
