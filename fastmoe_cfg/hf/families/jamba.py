"""Jamba (`JambaSparseMoeBlock`): softmax top-k, the chosen weights NOT renormalised (JambaTopKRouter has no
norm_topk_prob), experts as wide as the dense MLPs (intermediate_size); MoE blocks in the layers with
index % expert_layer_period == expert_layer_offset (when num_experts > 1), a dense gated MLP elsewhere, in Mamba and
attention layers alike."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, dense, gated_experts, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, fused_experts


class JambaFields(HFFields):
    num_experts: int = hf_field(names=("num_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    expert_layer_period: int = hf_field(2, ge=1)
    expert_layer_offset: int = hf_field(1, ge=0)
    hidden_act: Activation = "silu"
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def moe_layers(hf: JambaFields) -> tuple[int, ...]:
    """JambaConfig.layers_num_experts: num_experts where index % period == offset, else 1 (a dense MLP)."""
    if hf.num_experts <= 1:
        return ()
    return tuple(index for index in range(hf.num_hidden_layers) if index % hf.expert_layer_period == hf.expert_layer_offset)


def convert(out: Conversion, hf: JambaFields, context: Context) -> None:
    if hf.expert_layer_offset >= hf.expert_layer_period:
        context.problem("expert_layer_offset", f"must be smaller than expert_layer_period ({hf.expert_layer_period}), as transformers requires")
        return
    if not out.is_moe:
        return dense(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    out.set("type", "moe", "JambaSparseMoeBlock: layer % expert_layer_period == expert_layer_offset")
    out.set("experts", hf.num_experts, "num_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    gated_experts(out, hf.intermediate_size, "intermediate_size (the experts are as wide as the dense MLPs)", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=False, normalize_source="JambaTopKRouter keeps the softmax weights of the top k (no renormalisation)")
    aux_loss(out, context, hf.router_aux_loss_coef)


def tensors(config) -> list[Tensors]:
    return [Tensors(("router.weight",), "router.weight"), *fused_experts()]


FAMILY = Family(
    model_types=("jamba",),
    fields=JambaFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block="JambaSparseMoeBlock",
    hf_modules=("jamba",),
    note="softmax top-k without renormalisation; MoE blocks where layer % expert_layer_period == expert_layer_offset, dense MLPs (same width) elsewhere",
)
