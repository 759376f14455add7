"""Qwen3-Omni-MoE's thinker text model (`Qwen3OmniMoeThinkerTextSparseMoeBlock`, `qwen3_omni_moe_text`): Qwen3-MoE's
block (softmax top-k, renormalised with norm_topk_prob, true by default), MoE layers as Qwen's (mlp_only_layers,
decoder_sparse_step). The multimodal `qwen3_omni_moe` config holds it under thinker_config.text_config (a
`qwen3_omni_moe_thinker` config under text_config). The talker's MoE text model (Qwen2-MoE's block) is not converted.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.mixtral import router_and_experts
from fastmoe_cfg.hf.families.qwen3_moe import QwenMoeFields, qwen_moe_layers
from fastmoe_cfg.hf.families.qwen3_moe import convert as qwen3_moe_convert
from fastmoe_cfg.hf.mapping import Context, Conversion


class Qwen3OmniMoeTextFields(QwenMoeFields):
    norm_topk_prob: bool = True  # Qwen3OmniMoeTextConfig's default (Qwen3-MoE's is false)
    shared_expert_intermediate_size: int | None = None  # in the published file (0); the thinker's block has no shared expert


def convert(out: Conversion, hf: Qwen3OmniMoeTextFields, context: Context) -> None:
    context.unsupported_unless(
        "shared_expert_intermediate_size", lambda value: value == 0, "transformers' Qwen3OmniMoeThinkerTextSparseMoeBlock has no shared expert",
    )
    qwen3_moe_convert(out, hf, context)


FAMILY = Family(
    model_types=("qwen3_omni_moe_text",),
    fields=Qwen3OmniMoeTextFields,
    moe_layers=qwen_moe_layers,
    convert=convert,
    tensors=router_and_experts,
    block="Qwen3OmniMoeThinkerTextSparseMoeBlock",
    wrappers={"qwen3_omni_moe": "thinker_config", "qwen3_omni_moe_thinker": "text_config"},
    hf_modules=("qwen3_omni_moe",),
    note="the thinker's text model (thinker_config.text_config): Qwen3-MoE's block, norm_topk_prob true by default; the talker's MoE is not converted",
)
