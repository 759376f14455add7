"""Qwen3.5-MoE text model (`Qwen3_5MoeSparseMoeBlock`, `qwen3_5_moe_text`, under `text_config` of the multimodal
`qwen3_5_moe`): Qwen2-MoE's block, renormalised always, in every decoder layer.

transformers' block reads no norm_topk_prob, mlp_only_layers or decoder_sparse_step: a config.json that sets them
to other values than the block's (true, none, 1) is refused rather than read two ways.
"""

from __future__ import annotations

from pydantic import Field

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.qwen2_moe import shared_gated_expert, tensors
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, gated_experts, routed_softmax


class Qwen35MoeFields(HFFields):
    num_experts: int = hf_field(names=("num_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    shared_expert_intermediate_size: int = hf_field(ge=1)
    hidden_act: Activation = "silu"
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False
    # Not read by transformers' Qwen3.5-MoE: accepted when they say what the block does.
    norm_topk_prob: bool | None = None
    mlp_only_layers: list[int] = Field(default_factory=list)
    decoder_sparse_step: int | None = None


def fixed_qwen_settings(context: Context, name: str, *, normalized: bool = True) -> None:
    """Qwen's norm_topk_prob (unless `normalized` is false: the model reads it) / mlp_only_layers / decoder_sparse_step,
    which the `name` model ignores: refused unless they agree with it (renormalised top-k, an MoE block in every layer)."""
    if normalized:
        context.unsupported_unless("norm_topk_prob", lambda value: value is True, f"transformers' {name} always renormalises the top-k weights")
    context.unsupported_unless("mlp_only_layers", lambda value: value == [], f"transformers' {name} model has an MoE block in every decoder layer")
    context.unsupported_unless("decoder_sparse_step", lambda value: value == 1, f"transformers' {name} model has an MoE block in every decoder layer")


def convert(out: Conversion, hf: Qwen35MoeFields, context: Context) -> None:
    fixed_qwen_settings(context, "Qwen3.5-MoE")
    shared_gated_expert(out, hf)
    out.set("type", "moe", "Qwen3_5MoeSparseMoeBlock in every decoder layer")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=True, normalize_source="Qwen3_5MoeTopKRouter renormalises the top-k weights")
    aux_loss(out, context, hf.router_aux_loss_coef)


FAMILY = Family(
    model_types=("qwen3_5_moe_text",),
    fields=Qwen35MoeFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block="Qwen3_5MoeSparseMoeBlock",
    wrappers={"qwen3_5_moe": "text_config"},
    hf_modules=("qwen3_5_moe",),
    note="text_config of qwen3_5_moe: Qwen2-MoE's block (shared expert × sigmoid gate), always renormalised, in every decoder layer",
)
