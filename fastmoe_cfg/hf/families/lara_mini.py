"""Lara-Mini (`LaraMiniSparseMoeBlock`): Qwen3-Next's block without the shared-expert gate. Softmax top-k of the router
logits computed in float32, renormalised with norm_topk_prob (true by default); one shared expert of
shared_expert_intermediate_size, added in full; an MoE block in every decoder layer (the gated DeltaNet, sliding and
full attention token mixers of layer_types are outside the MLP)."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.mixtral import router_and_experts
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, gated_experts, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, gated_mlp

BLOCK = "LaraMiniSparseMoeBlock"


class LaraMiniFields(HFFields):
    num_experts: int = hf_field(ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    shared_expert_intermediate_size: int = hf_field(ge=1)
    hidden_act: Activation = "silu"  # absent fields: LaraMiniConfig's defaults
    norm_topk_prob: bool = True
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def shared_expert(out: Conversion, width: int, block: str) -> None:
    """One shared expert of its own width (`shared_expert_intermediate_size`), added in full: no sigmoid gate."""
    out.set("shared_experts", 1, f"{block}.shared_expert: one gated MLP on every token, added without a gate")
    out.set("shared_expert_intermediate_size", width, "shared_expert_intermediate_size")


def convert(out: Conversion, hf: LaraMiniFields, context: Context) -> None:
    out.set("type", "moe", f"{BLOCK} in every decoder layer")
    out.set("experts", hf.num_experts + 1, "num_experts + the shared expert")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    shared_expert(out, hf.shared_expert_intermediate_size, BLOCK)
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=hf.norm_topk_prob, normalize_source=context.named("norm_topk_prob"))
    out.set("router_dtype", "float32", "LaraMiniTopKRouter computes the router logits in float32")
    aux_loss(out, context, hf.router_aux_loss_coef)


def tensors(config) -> list[Tensors]:
    return [*router_and_experts(config), *gated_mlp("shared_expert", "shared")]


FAMILY = Family(
    model_types=("lara_mini",),
    fields=LaraMiniFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("lara_mini",),
    note=(
        "Qwen3-Next's block without the shared-expert gate: softmax top-k (router in float32), norm_topk_prob (true by "
        "default), one shared expert of shared_expert_intermediate_size added in full; every decoder layer"
    ),
)
