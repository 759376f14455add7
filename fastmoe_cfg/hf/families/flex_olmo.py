"""FlexOlmo (`FlexOlmoSparseMoeBlock`): OLMoE's block (softmax top-k, renormalised only with norm_topk_prob, default
false) in every decoder layer. Its decoder layer norms the block's output (post_feedforward_layernorm, OLMo-2 style)
rather than its input: that norm is the decoder layer's, outside the block, as the other families' pre-norms."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.mixtral import router_and_experts
from fastmoe_cfg.hf.families.olmoe import OlmoeFields
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, gated_experts, routed_softmax


def convert(out: Conversion, hf: OlmoeFields, context: Context) -> None:
    out.set("type", "moe", "FlexOlmoSparseMoeBlock in every decoder layer")
    out.set("experts", hf.num_experts, "num_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    gated_experts(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=hf.norm_topk_prob, normalize_source=context.named("norm_topk_prob"))
    aux_loss(out, context, hf.router_aux_loss_coef)


FAMILY = Family(
    model_types=("flex_olmo",),
    fields=OlmoeFields,  # FlexOlmoConfig's MoE fields and defaults are OLMoE's (norm_topk_prob false, router_aux_loss_coef 0.01)
    moe_layers=every_layer,
    convert=convert,
    tensors=router_and_experts,
    block="FlexOlmoSparseMoeBlock",
    hf_modules=("flex_olmo",),
    note="OLMoE's block (softmax top-k, norm_topk_prob, default false) in every decoder layer; the decoder layer's post_feedforward_layernorm on its output is outside the block",
)
