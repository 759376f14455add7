"""Phi-3.5-MoE (`PhimoeSparseMoeBlock`): SparseMixer routing, two experts per token by construction, in every layer.

In eval mode sparsemixer chooses the top-2 of the router logits; the weight of each choice is the softmax, at it,
over the experts not chosen before it whose logit is within a relative gap 2 · router_jitter_noise of its own (the
others masked): our `sparsemixer_eps` (exact). In training transformers instead samples each choice by Gumbel-max
among those unmasked experts, scales its weight by 1/3 unless the sample is the best of them or a 1-in-4 draw
keeps it whole, and back-propagates a Heun third-order estimate (`PhimoeMultiplier`); our layer routes in training
as in eval (deterministic top-2, gradients of the masked softmaxes). input_jitter_noise multiplies the block input
in training twice, in place (in the block and again in the router: a product of two U(1 ± eps) draws), which the
router and the experts both read; ours draws one factor U(1 ± eps) on the layer input.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, gated_experts, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, fused_experts

TRAINING = (
    "in training transformers samples the choices (Gumbel-max among the unmasked experts) with a Heun third-order "
    "gradient estimate; ours routes as in eval"
)


class PhimoeFields(HFFields):
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    hidden_act: Activation = "silu"
    router_jitter_noise: Number = hf_field(0.01, ge=0)  # PhimoeConfig's defaults from here on
    input_jitter_noise: Number = hf_field(0.0, ge=0)
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def convert(out: Conversion, hf: PhimoeFields, context: Context) -> None:
    context.unsupported_unless(
        "num_experts_per_tok", lambda k: k == 2,
        "PhimoeSparseMoeBlock's sparsemixer chooses 2 experts per token whatever this says (transformers ignores it)",
    )
    context.unsupported_unless("input_jitter_noise", lambda eps: eps < 1, "our jitter_eps is below 1 (a factor U(1 ± eps) >= 0)")
    out.set("type", "moe", "PhimoeSparseMoeBlock in every decoder layer")
    out.set("experts", hf.num_local_experts, "num_local_experts")
    out.set("experts_per_token", 2, "num_experts_per_tok: sparsemixer chooses 2 experts")
    gated_experts(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(
        out, normalize=True, normalize_source="sparsemixer_eps replaces the renormalisation",
        scores="softmax of the router logits (the load-balancing loss's P; HF's router linear and sparsemixer run in the model dtype)",
    )
    out.set(
        "sparsemixer_eps", hf.router_jitter_noise,
        f"{context.named('router_jitter_noise')}: sparsemixer's masking threshold, exact in eval; {TRAINING}",
    )
    if hf.input_jitter_noise:
        out.set("jitter_eps", hf.input_jitter_noise, "input_jitter_noise: in training transformers multiplies the block input by U(1 ± eps) twice; ours once")
        out.set("jitter_target", "layer_input", "input_jitter_noise multiplies the block input in place: the router and the experts read it")
    aux_loss(out, context, hf.router_aux_loss_coef)


FAMILY = Family(
    model_types=("phimoe",),
    fields=PhimoeFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=lambda config: [Tensors(("router.weight",), "router.weight"), *fused_experts()],
    block="PhimoeSparseMoeBlock",
    hf_modules=("phimoe",),
    note="sparsemixer (top-2, masked softmax weights: sparsemixer_eps = router_jitter_noise), exact in eval; in training HF samples the choices with a Heun gradient estimate, ours routes as in eval",
)
