"""Solar Open (`solar_open`, `SolarOpenMoE`): DeepSeek-V3's MoE block, line for line (sigmoid, top-k on scores +
e_score_correction_bias, renormalised × routed_scaling_factor, n_shared_experts), in every decoder layer
(transformers' SolarOpenDecoderLayer has no dense layer: a config.json's first_k_dense_replace must be 0)."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import DeepseekV3Fields, converter, tensors
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, every_layer

BLOCK = "SolarOpenMoE"


class SolarOpenFields(DeepseekV3Fields):
    routed_scaling_factor: Number = 1.0  # SolarOpenConfig's defaults
    n_group: int = hf_field(1, ge=1)
    topk_group: int = hf_field(1, ge=1)
    first_k_dense_replace: int | None = hf_field(None, ge=0)  # not read by transformers


base = converter(BLOCK, "Solar Open", "every decoder layer")


def convert(out: Conversion, hf: SolarOpenFields, context: Context) -> None:
    context.unsupported_unless(
        "first_k_dense_replace", lambda value: value == 0,
        "transformers' Solar Open has an MoE block in every decoder layer; set it to 0",
    )
    base(out, hf, context)


FAMILY = Family(
    model_types=("solar_open",),
    fields=SolarOpenFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("solar_open",),
    note="DeepSeek-V3's block (sigmoid, top-k on scores + e_score_correction_bias, renormalised × routed_scaling_factor, shared experts) in every layer",
)
