"""GLM-4.5 (`Glm4MoeMoE`): DeepSeek-V3's MoE block, line for line (sigmoid, group-limited top-k on scores +
e_score_correction_bias, renormalised × routed_scaling_factor, n_shared_experts), with GLM's defaults (no groups,
× 1.0, one dense layer); dense MLPs before first_k_dense_replace."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import DeepseekV3Fields, converter, moe_layers, tensors
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion


class Glm4MoeFields(DeepseekV3Fields):
    first_k_dense_replace: int = hf_field(1, ge=0)  # Glm4MoeConfig's defaults
    routed_scaling_factor: Number = 1.0
    n_group: int = hf_field(1, ge=1)
    topk_group: int = hf_field(1, ge=1)
    decoder_sparse_step: int | None = None  # in GLM-4.5's config.json: transformers ignores both
    moe_router_dtype: str | None = None


def glm_converter(block: str, name: str):
    base = converter(block, name)

    def convert(out: Conversion, hf: Glm4MoeFields, context: Context) -> None:
        context.unsupported_unless(
            "decoder_sparse_step", lambda value: value == 1,
            "transformers makes every layer from first_k_dense_replace on an MoE layer, whatever decoder_sparse_step "
            "says: which layers are MoE is ambiguous; set it to 1",
        )
        context.unsupported_unless(
            "moe_router_dtype", lambda value: value == "float32", "transformers' router runs in float32 whatever moe_router_dtype says"
        )
        base(out, hf, context)

    return convert


FAMILY = Family(
    model_types=("glm4_moe",),
    fields=Glm4MoeFields,
    moe_layers=moe_layers,
    convert=glm_converter("Glm4MoeMoE", "GLM-4.5"),
    tensors=tensors,
    block="Glm4MoeMoE",
    hf_modules=("glm4_moe",),
    note=(
        "DeepSeek-V3's block (sigmoid, top-k on scores + e_score_correction_bias, renormalised × routed_scaling_factor, "
        "shared experts; groups when n_group > 1); dense MLPs before first_k_dense_replace"
    ),
)
