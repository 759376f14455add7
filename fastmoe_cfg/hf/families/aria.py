"""Aria (rhymes-ai, `AriaTextMoELayer`; the text model under the `text_config` of an `aria` wrapper): the top-k of the
router logits (a linear in the model's dtype), weighted by the softmax over the k chosen logits (a renormalised
softmax); moe_num_shared_experts as one gated MLP of intermediate_size × moe_num_shared_experts, added with weight 1;
an MoE block in every decoder layer. The routed experts are stored transposed (`gate_up_proj` [E, H, 2I], gate then
up as halves of the last dimension; `down_proj` [E, I, H]). transformers adds no load-balancing loss for it.

The routed experts are always SiLU-gated while the shared ones use hidden_act, and only the shared ones take
mlp_bias: with shared experts, a hidden_act other than silu and mlp_bias true are refused (our shared experts are
the routed experts' MLP).
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, every_layer, gated_experts, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, gated_mlp, transposed

BLOCK = "AriaTextMoELayer"
SILU = "silu (AriaExperts are always SiLU-gated)"


class AriaTextFields(HFFields):
    moe_num_experts: int = hf_field(ge=1)
    moe_topk: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)  # each expert's width (and, × moe_num_shared_experts, the shared MLP's)
    moe_num_shared_experts: int = hf_field(2, ge=0)  # absent fields: AriaTextConfig's defaults
    hidden_act: Activation = "silu"
    mlp_bias: bool = False


def convert(out: Conversion, hf: AriaTextFields, context: Context) -> None:
    shared = hf.moe_num_shared_experts
    if shared:
        context.unsupported_unless(
            "hidden_act", lambda value: hf.hidden_act == "silu",
            "it is the activation of Aria's shared experts only (AriaExperts are always SiLU-gated): our shared experts "
            "use the routed experts' activation; silu converts",
        )
        context.unsupported_unless(
            "mlp_bias", lambda value: value is False,
            "it gives Aria's shared experts biases, not its routed experts (AriaExperts have none): our shared experts "
            "have the routed experts' biases",
        )
    out.set("type", "moe", f"{BLOCK} in every decoder layer")
    out.set("experts", hf.moe_num_experts + shared, "moe_num_experts + moe_num_shared_experts")
    out.set("experts_per_token", hf.moe_topk, "moe_topk")
    if shared:
        out.set(
            "shared_experts", shared,
            f"{context.named('moe_num_shared_experts')}: one MLP of width intermediate_size × moe_num_shared_experts",
        )
    gated_experts(out, hf.intermediate_size, "intermediate_size", "silu", SILU if shared == 0 else f"{SILU}; the shared experts' hidden_act")
    routed_softmax(
        out, normalize=True, normalize_source="AriaTextTopKRouter: softmax over the k chosen logits",
        scores="softmax of the router logits (in the model's dtype in HF; ours in float32 at least: the same in float32)",
    )
    out.set("auxiliary_loss_coefficient", 0.0, "transformers' Aria adds no load-balancing loss")


def tensors(config) -> list[Tensors]:
    table = [
        Tensors(("router.weight",), "router.weight"),
        transposed("experts.gate_up_proj", "experts.layer_1.weight"),
        transposed("experts.down_proj", "experts.layer_2.weight"),
    ]
    return table + (gated_mlp("shared_experts", "shared") if config.shared_experts else [])


FAMILY = Family(
    model_types=("aria_text",),
    fields=AriaTextFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    wrappers={"aria": "text_config"},
    hf_modules=("aria",),
    note=(
        "top-k of the router logits, softmax over the chosen, moe_num_shared_experts as one MLP, experts stored transposed; "
        "every decoder layer; the text model of an aria wrapper; the shared experts' own hidden_act (not silu) or "
        "mlp_bias refused"
    ),
)
