"""Granite-MoE (`GraniteMoeMoE`): top-k of the router logits, softmax over the k chosen, in every decoder layer.

transformers 5.x holds the experts fused (`experts.gate_up_proj` [E, 2I, H], gate rows first; `experts.down_proj`
[E, H, I]) and the router as `router.weight` [E, H]; it renames the published checkpoints' `input_linear`,
`output_linear` and `router.layer` on load, and the tensor table reads the module's names. The decoder layer's
`residual_multiplier` scales the block's output on the residual, outside the block (as it scales the attention's).
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, gated_experts, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, fused_experts


class GraniteMoeFields(HFFields):
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    hidden_act: Activation = "silu"
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def routed(out: Conversion, hf: GraniteMoeFields, context: Context, block: str) -> None:
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    gated_experts(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(
        out, normalize=True, normalize_source=f"{block}: top-k of the logits, softmax over the k chosen",
        scores="softmax of the router logits in float32 (GraniteMoeTopKRouter upcasts the logits)",
    )
    aux_loss(out, context, hf.router_aux_loss_coef)


def convert(out: Conversion, hf: GraniteMoeFields, context: Context) -> None:
    out.set("type", "moe", "GraniteMoeMoE in every decoder layer")
    out.set("experts", hf.num_local_experts, "num_local_experts")
    routed(out, hf, context, "GraniteMoeTopKRouter")


def router_and_experts(prefix: str = "") -> list[Tensors]:
    """`router.weight` and the fused experts, under `prefix` (the decoder layer's `block_sparse_moe.`)."""
    return [Tensors((f"{prefix}router.weight",), "router.weight"), *fused_experts(f"{prefix}experts")]


FAMILY = Family(
    model_types=("granitemoe",),
    fields=GraniteMoeFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=lambda config: router_and_experts(),
    block="GraniteMoeMoE",
    hf_modules=("granitemoe",),
    note="top-k of the logits, softmax over the k chosen (= renormalised softmax), in every layer; residual_multiplier is the decoder layer's, outside the block",
)
