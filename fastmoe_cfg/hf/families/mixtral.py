"""Mixtral (`MixtralSparseMoeBlock`): softmax top-k, renormalised, in every decoder layer; input jitter in training."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import (
    Context,
    Conversion,
    aux_loss,
    every_layer,
    gated_experts,
    input_jitter,
    routed_softmax,
)
from fastmoe_cfg.hf.weights import Tensors, fused_experts


class MixtralFields(HFFields):
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    hidden_act: Activation = "silu"
    router_jitter_noise: Number = hf_field(0.0, ge=0)
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def convert(out: Conversion, hf: MixtralFields, context: Context, *, block: str = "MixtralSparseMoeBlock") -> None:
    out.set("type", "moe", f"{block} in every decoder layer")
    out.set("experts", hf.num_local_experts, "num_local_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    gated_experts(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=True, normalize_source=f"{block.removesuffix('SparseMoeBlock')} renormalises the top-k weights")
    input_jitter(out, hf.router_jitter_noise)
    aux_loss(out, context, hf.router_aux_loss_coef)


def router_and_experts(config) -> list[Tensors]:
    """`gate` (nn.Linear, no bias) and fused experts: the Mixtral layout, which several families share."""
    return [Tensors(("gate.weight",), "router.weight"), *fused_experts()]


FAMILY = Family(
    model_types=("mixtral",),
    fields=MixtralFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=router_and_experts,
    block="MixtralSparseMoeBlock",
)
