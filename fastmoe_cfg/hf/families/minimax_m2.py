"""MiniMax-M2 (`MiniMaxM2SparseMoeBlock`): sigmoid scores in float32, top-k of scores + e_score_correction_bias (the
choice only), the chosen raw scores renormalised; no groups, no scaling, no shared expert; every decoder layer.

MiniMax's config.json also carries the settings of its own code that transformers' block hard-codes: scoring_func
(sigmoid), use_routing_bias (true) and shared_intermediate_size (0); other values are refused.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.minimax import no_shared_expert
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, every_layer, gated_experts, input_jitter
from fastmoe_cfg.hf.weights import Tensors, fused_experts


class MiniMaxM2Fields(HFFields):
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    hidden_act: Activation = "silu"
    router_jitter_noise: Number = hf_field(0.0, ge=0)
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)  # with output_router_logits only, which is refused
    output_router_logits: bool = False
    # MiniMax's own config.json; transformers' block hard-codes them.
    scoring_func: str | None = None
    use_routing_bias: bool | None = None
    shared_intermediate_size: int | None = None


BLOCK = "MiniMaxM2SparseMoeBlock"


def convert(out: Conversion, hf: MiniMaxM2Fields, context: Context) -> None:
    context.unsupported_unless("scoring_func", lambda value: value == "sigmoid", f"transformers' {BLOCK} scores with sigmoid")
    context.unsupported_unless(
        "use_routing_bias", lambda value: value is True, f"transformers' {BLOCK} always adds e_score_correction_bias to the scores for the choice",
    )
    no_shared_expert(context, BLOCK)
    context.unsupported_unless(
        "output_router_logits", lambda value: value is False,
        "with it, MiniMaxM2ForCausalLM adds router_aux_loss_coef × a Switch loss of the softmax of the router logits, "
        "pooled over all layers; routing aux_free here has no load-balancing loss",
    )
    out.set("type", "moe", f"{BLOCK} in every decoder layer")
    out.set("experts", hf.num_local_experts, "num_local_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    gated_experts(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    out.set("routing", "aux_free", "e_score_correction_bias (a buffer) serves the choice only")
    out.set("router_score_function", "sigmoid", "MiniMaxM2TopKRouter: sigmoid of the logits in float32")
    out.set("normalize_expert_weights", True, "MiniMaxM2TopKRouter renormalises the chosen scores")
    out.set("expert_weights_epsilon", 0.0, "MiniMaxM2TopKRouter divides by the sum of the chosen scores, without an epsilon")
    out.set("router_dtype", "input", "HF runs the router linear in the router weight's dtype (the model's)")
    input_jitter(out, hf.router_jitter_noise)


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("gate.weight",), "router.weight"),
        Tensors(("e_score_correction_bias",), "router_correction_bias"),
        *fused_experts(),
    ]


FAMILY = Family(
    model_types=("minimax_m2",),
    fields=MiniMaxM2Fields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("minimax_m2",),
    note="sigmoid scores, top-k of scores + e_score_correction_bias (aux_free), renormalised, in every decoder layer; scoring_func, use_routing_bias, shared_intermediate_size other than transformers' hard-coded values are refused",
)
