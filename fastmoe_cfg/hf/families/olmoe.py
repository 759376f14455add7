"""OLMoE (`OlmoeSparseMoeBlock`): softmax top-k, renormalised only with norm_topk_prob, in every decoder layer."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.mixtral import router_and_experts
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, gated_experts, routed_softmax


class OlmoeFields(HFFields):
    num_experts: int = hf_field(names=("num_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    hidden_act: Activation = "silu"
    norm_topk_prob: bool = False
    router_aux_loss_coef: Number = hf_field(0.01, ge=0)
    output_router_logits: bool = False


def convert(out: Conversion, hf: OlmoeFields, context: Context) -> None:
    out.set("type", "moe", "OlmoeSparseMoeBlock in every decoder layer")
    out.set("experts", hf.num_experts, "num_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    gated_experts(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=hf.norm_topk_prob, normalize_source=context.named("norm_topk_prob"))
    aux_loss(out, context, hf.router_aux_loss_coef)


FAMILY = Family(
    model_types=("olmoe",),
    fields=OlmoeFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=router_and_experts,
    block="OlmoeSparseMoeBlock",
)
