"""MiniMax-M3 text model (`MiniMaxM3VLSparseMoeBlock`, `minimax_m3_vl_text`, under `text_config` of the multimodal
`minimax_m3_vl`): MiniMax-M2's routing (sigmoid scores, top-k of scores + e_score_correction_bias, the chosen scores
renormalised without an epsilon) × routed_scaling_factor, one shared expert (weight 1, shared_intermediate_size),
routed and shared experts with GPT-OSS's clamped GLU (gate and up not interleaved, no biases). MoE blocks in the
layers whose mlp_layer_types entry is "sparse" (or, as transformers derives it, whose legacy moe_layer_freq flag is
set); a dense MLP with the same activation, dense_intermediate_size wide, elsewhere.

MiniMax's config.json carries the settings of its own code that transformers hard-codes: scoring_func (sigmoid),
use_routing_bias (true), n_shared_experts (1), swiglu_alpha (1.702); other values are refused. Its hidden_act
("swigluoai") is not read: transformers computes the clamped GLU inline.
"""

from __future__ import annotations

from typing import Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion
from fastmoe_cfg.hf.weights import Tensors, fused_experts
from fastmoe_cfg.schemas.mlp import GPT_OSS_ALPHA, GPT_OSS_LIMIT


class MiniMaxM3Fields(HFFields):
    model_type: str = "minimax_m3_vl_text"  # MiniMax-M3's text_config has none: MiniMaxM3VLTextConfig's
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    shared_intermediate_size: int = hf_field(ge=1)
    dense_intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width (required where there are some)
    routed_scaling_factor: Number = hf_field(2.0, gt=0)
    swiglu_alpha: Number = GPT_OSS_ALPHA
    swiglu_limit: Number = hf_field(GPT_OSS_LIMIT, gt=0)
    mlp_layer_types: list[Literal["sparse", "dense"]] | None = None
    moe_layer_freq: list[int] | None = None  # legacy: transformers derives mlp_layer_types from it when absent
    hidden_act: str | None = None  # not used: transformers sets silu and computes the clamped GLU inline
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)  # with output_router_logits only, which is refused
    output_router_logits: bool = False
    # MiniMax's own config.json; transformers' block hard-codes them.
    scoring_func: str | None = None
    use_routing_bias: bool | None = None
    n_shared_experts: int | None = None


BLOCK = "MiniMaxM3VLSparseMoeBlock"


def layer_types(hf: MiniMaxM3Fields) -> list[str]:
    """MiniMaxM3VLTextConfig.mlp_layer_types: given, else from moe_layer_freq, else every layer sparse."""
    if hf.mlp_layer_types is not None:
        return list(hf.mlp_layer_types)
    if hf.moe_layer_freq is not None:
        return ["sparse" if flag else "dense" for flag in hf.moe_layer_freq]
    return ["sparse"] * hf.num_hidden_layers


def moe_layers(hf: MiniMaxM3Fields) -> tuple[int, ...]:
    return tuple(index for index, kind in enumerate(layer_types(hf)[: hf.num_hidden_layers]) if kind == "sparse")


def activation(out: Conversion, hf: MiniMaxM3Fields, context: Context, what: str) -> None:
    out.set("gated", True, f"{what}: gate_up_proj, gate rows first")
    out.set("activation", "gpt_oss_glu", f"{what}: GPT-OSS's clamped GLU, (up + 1) · gate · sigmoid(1.702 · gate) (hidden_act is not used)")
    out.set("activation_limit", hf.swiglu_limit, context.named("swiglu_limit"))
    out.set("add_linear_biases", False, "no biases in the MLP")


def convert(out: Conversion, hf: MiniMaxM3Fields, context: Context) -> None:
    context.unsupported_unless("swiglu_alpha", lambda value: value == GPT_OSS_ALPHA, f"our gpt_oss_glu has alpha {GPT_OSS_ALPHA}")
    context.unsupported_unless("scoring_func", lambda value: value == "sigmoid", f"transformers' {BLOCK} scores with sigmoid")
    context.unsupported_unless(
        "use_routing_bias", lambda value: value is True, f"transformers' {BLOCK} always adds e_score_correction_bias to the scores for the choice",
    )
    context.unsupported_unless("n_shared_experts", lambda value: value == 1, f"transformers' {BLOCK} has one shared expert of shared_intermediate_size")
    context.unsupported_unless(
        "output_router_logits", lambda value: value is False,
        "with it, transformers adds router_aux_loss_coef × a Switch loss of the softmax of the router logits, pooled over "
        "all layers; routing aux_free here has no load-balancing loss",
    )
    for name in ("mlp_layer_types", "moe_layer_freq"):
        given = getattr(hf, name)
        if given is not None and len(given) != hf.num_hidden_layers and (name == "mlp_layer_types" or hf.mlp_layer_types is None):
            context.problem(name, f"has {len(given)} entries: expected one per decoder layer ({hf.num_hidden_layers}, num_hidden_layers)")
    if context.problems:
        return
    if not out.is_moe:
        if hf.dense_intermediate_size is None:
            context.problem("dense_intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
            return
        out.set("type", "mlp", f"decoder layer {out.layer} has a dense MLP (MiniMaxM3VLDenseMLP)")
        out.set("intermediate_size", hf.dense_intermediate_size, "dense_intermediate_size")
        activation(out, hf, context, "MiniMaxM3VLDenseMLP")
        return
    out.set("type", "moe", f"{BLOCK}: the decoder layers whose mlp_layer_types entry is sparse")
    out.set("experts", hf.num_local_experts + 1, "num_local_experts + the shared expert")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    out.set("shared_experts", 1, "shared_experts: one MLP on every token, weight 1 (not × routed_scaling_factor)")
    out.set("shared_expert_intermediate_size", hf.shared_intermediate_size, "shared_intermediate_size")
    out.set("intermediate_size", hf.intermediate_size, "intermediate_size")
    activation(out, hf, context, "MiniMaxM3VLExperts and the shared expert")
    out.set("routing", "aux_free", "gate.e_score_correction_bias (a buffer) serves the choice only")
    out.set("router_score_function", "sigmoid", "MiniMaxM3VLTopKRouter: sigmoid of the logits in float32")
    out.set("normalize_expert_weights", True, "MiniMaxM3VLTopKRouter renormalises the chosen scores")
    out.set("expert_weights_epsilon", 0.0, "MiniMaxM3VLTopKRouter divides by the sum of the chosen scores, without an epsilon")
    out.set("routed_scaling_factor", hf.routed_scaling_factor, context.named("routed_scaling_factor"))
    out.set("router_dtype", "input", "HF runs the router linear in the router weight's dtype (the model's)")


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("gate.weight",), "router.weight"),
        Tensors(("gate.e_score_correction_bias",), "router_correction_bias"),
        *fused_experts(),
        Tensors(("shared_experts.gate_up_proj.weight",), "shared.layer_1.weight"),
        Tensors(("shared_experts.down_proj.weight",), "shared.layer_2.weight"),
    ]


FAMILY = Family(
    model_types=("minimax_m3_vl_text",),
    fields=MiniMaxM3Fields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    wrappers={"minimax_m3_vl": "text_config"},
    hf_modules=("minimax_m3_vl",),
    note="text_config of minimax_m3_vl: MiniMax-M2's sigmoid + correction-bias routing × routed_scaling_factor, one shared expert, gpt_oss_glu experts (not interleaved); dense MLPs where mlp_layer_types (or moe_layer_freq) says dense",
)
