"""Hunyuan 3 (`hy_v3`, `HYV3MoE`): DeepSeek-V3's block without expert groups. `HYV3TopKRouter` (`gate`, float32)
takes the sigmoid, picks the top-k of scores + the block's `e_score_correction_bias`, weights by the unbiased scores,
always renormalised, × router_scaling_factor; one shared MLP of width moe_intermediate_size × num_shared_experts
(num_shared_experts 0 falls back to intermediate_size in transformers: `intermediate_size or config.intermediate_size`).
MoE layers where mlp_layer_types is "sparse" (default: every layer but the first).

enable_moe_fp32_combine adds the shared expert's output in float32: a rounding difference in low precision only.
"""

from __future__ import annotations

from typing import Any, Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.afmoe import biased_sigmoid
from fastmoe_cfg.hf.families.deepseek_v3 import check_layer_types
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp

BLOCK = "HYV3MoE"


class HYV3Fields(HFFields):
    num_experts: int = hf_field(names=("num_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width (and the shared MLP's without num_shared_experts)
    num_shared_experts: int = hf_field(1, ge=0)  # HYV3Config's defaults
    router_scaling_factor: Number = 2.826
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    mlp_bias: bool = False
    enable_moe_fp32_combine: bool = True
    hidden_act: Activation = "silu"
    first_k_dense_replace: int | None = hf_field(None, ge=0)  # not read by transformers' HYV3


def listed_or_all_but(first: int) -> Any:
    """MoE layers where mlp_layer_types is "sparse"; without it, every layer from `first` on."""

    def moe_layers(hf: Any) -> tuple[int, ...]:
        if hf.mlp_layer_types is None:
            return tuple(range(first, hf.num_hidden_layers))
        return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")

    return moe_layers


moe_layers = listed_or_all_but(1)


def ignored_first_k_dense(hf: Any, context: Context, block: str, first: int = 1) -> None:
    """A first_k_dense_replace that transformers does not read: without mlp_layer_types, it must say what the model builds."""
    check_layer_types(hf, context)
    if hf.mlp_layer_types is None:
        context.unsupported_unless(
            "first_k_dense_replace", lambda value: value == first,
            f"transformers' {block} model ignores it: without mlp_layer_types, layers before {first} alone are dense; "
            f"give mlp_layer_types, or set first_k_dense_replace to {first}",
        )


def convert(out: Conversion, hf: HYV3Fields, context: Context) -> None:
    ignored_first_k_dense(hf, context, "HYV3")
    if not out.is_moe:
        if hf.intermediate_size is None:
            context.problem("intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
            return
        dense(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
        if hf.mlp_bias:
            out.set("add_linear_biases", True, "mlp_bias: HYV3MLP's linears have biases")
        return
    context.unsupported_unless(
        "mlp_bias", lambda value: value is False,
        "HYV3MoE's shared expert then has biases and its routed experts none; our add_linear_biases gives both or neither",
    )
    shared_width = hf.moe_intermediate_size * hf.num_shared_experts
    shared_source = f"{context.named('num_shared_experts')}: one MLP of width moe_intermediate_size × num_shared_experts"
    if not shared_width:  # HYV3MLP(intermediate_size=0) takes config.intermediate_size
        if hf.intermediate_size is None:
            context.problem("intermediate_size", "missing: expected an integer (HYV3MoE's shared MLP takes it when num_shared_experts is 0)")
            return
        shared_width, shared_source = hf.intermediate_size, "num_shared_experts 0: HYV3MLP then takes intermediate_size"
    out.set("type", "moe", f"{BLOCK}: mlp_layer_types[layer] is \"sparse\" (default: every layer but the first)")
    out.set("experts", hf.num_experts + max(hf.num_shared_experts, 1), "num_experts + the shared MLP's num_shared_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    out.set("shared_experts", max(hf.num_shared_experts, 1), shared_source + " (added in float32 with enable_moe_fp32_combine)")
    if shared_width != hf.moe_intermediate_size * max(hf.num_shared_experts, 1):
        out.set("shared_expert_intermediate_size", shared_width, shared_source)
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    biased_sigmoid(
        out, scale=hf.router_scaling_factor, scale_source=context.named("router_scaling_factor"), block="HYV3TopKRouter",
        dtype="float32", dtype_source="HYV3TopKRouter upcasts the router linear to float32",
    )


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("gate.weight",), "router.weight"),
        Tensors(("e_score_correction_bias",), "router_correction_bias"),
        *fused_experts(),
        *gated_mlp("shared_experts", "shared"),
    ]


FAMILY = Family(
    model_types=("hy_v3",),
    fields=HYV3Fields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("hy_v3",),
    note=(
        "DeepSeek-V3's block without groups: sigmoid, top-k on scores + e_score_correction_bias, always renormalised × "
        "router_scaling_factor, a shared MLP (num_shared_experts 0: of intermediate_size); MoE layers from mlp_layer_types "
        "(default all but layer 0); mlp_bias refused on MoE layers"
    ),
)
