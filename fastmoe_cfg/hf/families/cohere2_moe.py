"""Cohere2-MoE (`Cohere2MoeSparseMoeBlock`; Command A+, North): the top-k of the router logits (a linear in the model's
dtype), weighted by the softmax over the k chosen logits (expert_selection_fn softmax, the default: Mixtral's routing)
or by their sigmoids, renormalised with norm_topk_prob (sigmoid, no epsilon); num_shared_experts as one MLP of
intermediate_size × num_shared_experts. The MoE layers are those whose mlp_layer_types entry is not "dense"; without
the list, every layer from first_k_dense_replace (0 by default) on; dense MLPs of prefix_dense_intermediate_size
(default intermediate_size) elsewhere. transformers adds no load-balancing loss for it.

Refused: shared_expert_combination_strategy "average" (the default) with shared experts, where the block returns
(routed + shared) / 2: routed_scaling_factor can halve the routed output, but our shared experts keep weight 1.
"""

from __future__ import annotations

from typing import Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import check_layer_types
from fastmoe_cfg.hf.fields import Activation, HFFields, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp

BLOCK = "Cohere2MoeSparseMoeBlock"
PLACEMENT = 'mlp_layer_types[layer] is "sparse" (default: layer >= first_k_dense_replace)'


class Cohere2MoeFields(HFFields):
    num_experts: int = hf_field(ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)  # each expert's width
    prefix_dense_intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' (None: intermediate_size)
    hidden_act: Activation = "silu"  # absent fields: Cohere2MoeConfig's defaults
    num_shared_experts: int = hf_field(0, ge=0)
    shared_expert_combination_strategy: Literal["average", "sum"] = "average"
    expert_selection_fn: Literal["softmax", "sigmoid"] = "softmax"
    norm_topk_prob: bool = True
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    first_k_dense_replace: int = hf_field(0, ge=0)  # read by Cohere2MoeConfig when mlp_layer_types is absent


def moe_layers(hf: Cohere2MoeFields) -> tuple[int, ...]:
    if hf.mlp_layer_types is None:
        return tuple(range(hf.first_k_dense_replace, hf.num_hidden_layers))
    return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")


def convert(out: Conversion, hf: Cohere2MoeFields, context: Context) -> None:
    check_layer_types(hf, context)
    if not out.is_moe:
        width, source = hf.prefix_dense_intermediate_size, "prefix_dense_intermediate_size"
        if width is None:
            width, source = hf.intermediate_size, "intermediate_size (prefix_dense_intermediate_size absent)"
        return dense(out, width, source, hf.hidden_act, context.named("hidden_act"))
    shared = hf.num_shared_experts
    if shared and hf.shared_expert_combination_strategy == "average":
        value = 'string "average"' if hf.given("shared_expert_combination_strategy") else "\"average\" (absent: transformers' default)"
        context.problem(
            "shared_expert_combination_strategy",
            f"{value} cannot be converted: with num_shared_experts > 0, {BLOCK} returns (routed + shared) / 2; "
            "routed_scaling_factor could halve the routed experts, but our shared experts keep weight 1 (\"sum\" converts)",
        )
    out.set("type", "moe", f"{BLOCK}: {PLACEMENT}")
    out.set("experts", hf.num_experts + shared, "num_experts + num_shared_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    if shared:
        out.set("shared_experts", shared, "num_shared_experts: one MLP of width intermediate_size × num_shared_experts, added (sum)")
    gated_experts(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    if hf.expert_selection_fn == "softmax":
        routed_softmax(
            out, normalize=True, normalize_source="Cohere2MoeTopKRouter: softmax over the k chosen logits (norm_topk_prob applies to sigmoid only)",
            scores=f"{context.named('expert_selection_fn')}: softmax of the router logits in float32",
        )
    else:
        out.set("routing", "aux_loss", "Cohere2MoeTopKRouter: top-k of the router logits (the order of their sigmoids)")
        out.set("router_score_function", "sigmoid", "expert_selection_fn sigmoid")
        out.set("normalize_expert_weights", hf.norm_topk_prob, context.named("norm_topk_prob"))
        if hf.norm_topk_prob:
            out.set("expert_weights_epsilon", 0.0, "Cohere2MoeTopKRouter divides by the sum of the chosen sigmoids, without an epsilon")
        out.set("router_dtype", "input", "Cohere2MoeTopKRouter runs the router linear in the model's dtype")
    out.set("auxiliary_loss_coefficient", 0.0, "transformers' Cohere2-MoE adds no load-balancing loss")


def tensors(config) -> list[Tensors]:
    table = [Tensors(("gate.weight",), "router.weight"), *fused_experts()]
    return table + (gated_mlp("shared_experts", "shared") if config.shared_experts else [])


FAMILY = Family(
    model_types=("cohere2_moe",),
    fields=Cohere2MoeFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("cohere2_moe",),
    note=(
        "top-k of the router logits, softmax over the chosen (default) or sigmoid renormalised with norm_topk_prob, "
        "num_shared_experts summed (shared_expert_combination_strategy \"average\", the default, refused: (routed + shared) / 2); "
        "dense MLPs of prefix_dense_intermediate_size where mlp_layer_types is dense (default: before first_k_dense_replace)"
    ),
)
