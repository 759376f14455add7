"""Mistral 4 (`mistral4`, `Mistral4MoE`; Mistral Small 4 is the text model under the `text_config` of a `mistral3`
wrapper): softmax scores, group-limited top-k when n_group > 1 (group score: the sum of its top-2 scores; no
correction bias), the chosen scores renormalised with norm_topk_prob (+1e-20) × routed_scaling_factor, n_shared_experts
as one MLP; dense MLPs before first_k_dense_replace. The router linear and its softmax run in the model's dtype
(ours: the linear in the model's dtype, the softmax in float32 at least: the same in float32)."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import dense_layer, groups, moe_layers, routed_experts
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp

BLOCK = "Mistral4MoE"


class Mistral4Fields(HFFields):
    n_routed_experts: int = hf_field(names=("n_routed_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width
    n_shared_experts: int = hf_field(1, ge=0)  # absent fields: Mistral4Config's defaults
    first_k_dense_replace: int = hf_field(0, ge=0)
    norm_topk_prob: bool = True
    routed_scaling_factor: Number = 1.0
    n_group: int = hf_field(1, ge=1)
    topk_group: int = hf_field(1, ge=1)
    hidden_act: Activation = "silu"
    moe_layer_freq: int | None = None  # fields transformers does not read: they must agree with it
    scoring_func: str | None = None


def convert(out: Conversion, hf: Mistral4Fields, context: Context) -> None:
    context.unsupported_unless(
        "moe_layer_freq", lambda value: value == 1,
        "transformers makes every layer from first_k_dense_replace on an MoE layer: which layers are MoE is ambiguous; set it to 1",
    )
    context.unsupported_unless("scoring_func", lambda value: value == "softmax", "Mistral 4 scores with softmax")
    if not out.is_moe:
        return dense_layer(out, hf, context)
    routed_experts(out, hf, context, block=BLOCK)
    out.set("routing", "aux_loss", "Mistral4TopkRouter: top-k of the softmax scores, no correction bias")
    out.set("router_score_function", "softmax", "softmax of the router logits")
    out.set("normalize_expert_weights", hf.norm_topk_prob, context.named("norm_topk_prob"))
    out.set("routed_scaling_factor", hf.routed_scaling_factor, context.named("routed_scaling_factor"))
    groups(out, hf, context)
    out.set("router_dtype", "input", "Mistral4TopkRouter runs the router linear in the model's dtype")
    out.set("auxiliary_loss_coefficient", 0.0, "transformers' Mistral 4 adds no load-balancing loss")


def tensors(config) -> list[Tensors]:
    table = [Tensors(("gate.weight",), "router.weight"), *fused_experts()]
    return table + (gated_mlp("shared_experts", "shared") if config.shared_experts else [])


FAMILY = Family(
    model_types=("mistral4",),
    fields=Mistral4Fields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    wrappers={"mistral3": "text_config"},
    hf_modules=("mistral4",),
    note=(
        "softmax top-k, group-limited (top-2 sum) when n_group > 1, renormalised (norm_topk_prob) × routed_scaling_factor, "
        "shared experts; dense MLPs before first_k_dense_replace; the text model of a mistral3 wrapper (Mistral Small 4)"
    ),
)
