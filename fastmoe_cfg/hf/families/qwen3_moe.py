"""Qwen3-MoE (`Qwen3MoeSparseMoeBlock`): softmax top-k, renormalised with norm_topk_prob; the MoE layers are those
not in mlp_only_layers whose (index + 1) is a multiple of decoder_sparse_step (dense MLPs elsewhere)."""

from __future__ import annotations

from pydantic import Field

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.mixtral import router_and_experts
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, dense, gated_experts, routed_softmax


class QwenMoeFields(HFFields):
    """The fields Qwen's MoE families share (Qwen2-MoE, Qwen3-MoE, Qwen3-Next, ...)."""

    num_experts: int = hf_field(names=("num_experts", "num_local_experts"), ge=0)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width (required where there are some)
    decoder_sparse_step: int = hf_field(1, ge=1)
    mlp_only_layers: list[int] = Field(default_factory=list)
    hidden_act: Activation = "silu"
    norm_topk_prob: bool = False
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def qwen_moe_layers(hf: QwenMoeFields) -> tuple[int, ...]:
    dense_layers = set(hf.mlp_only_layers)
    return tuple(
        index for index in range(hf.num_hidden_layers)
        if index not in dense_layers and hf.num_experts > 0 and (index + 1) % hf.decoder_sparse_step == 0
    )


def dense_layer(out: Conversion, hf: QwenMoeFields, context: Context) -> None:
    """A decoder layer without an MoE block: the model's dense gated MLP (intermediate_size)."""
    if hf.intermediate_size is None:
        context.problem("intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
        return
    dense(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))


def routed(out: Conversion, hf: QwenMoeFields, context: Context) -> None:
    """The routed experts and the router: softmax top-k, renormalised with norm_topk_prob."""
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=hf.norm_topk_prob, normalize_source=context.named("norm_topk_prob"))
    aux_loss(out, context, hf.router_aux_loss_coef)


SPARSE = "a sparse MoE block: not in mlp_only_layers, num_experts > 0, (layer + 1) % decoder_sparse_step == 0"


def convert(out: Conversion, hf: QwenMoeFields, context: Context) -> None:
    if not out.is_moe:
        return dense_layer(out, hf, context)
    out.set("type", "moe", SPARSE)
    out.set("experts", hf.num_experts, "num_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    routed(out, hf, context)


FAMILY = Family(
    model_types=("qwen3_moe",),
    fields=QwenMoeFields,
    moe_layers=qwen_moe_layers,
    convert=convert,
    tensors=router_and_experts,
    block="Qwen3MoeSparseMoeBlock",
)
