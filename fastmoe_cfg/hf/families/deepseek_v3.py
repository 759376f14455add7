"""DeepSeek-V3 (`DeepseekV3MoE`): sigmoid scores, group-limited top-k on scores + e_score_correction_bias
(noaux_tc), renormalised and × routed_scaling_factor, n_shared_experts; dense MLPs before first_k_dense_replace.

Kimi-K2 (`kimi_k2`, its config.json) is this architecture: transformers itself reads it as `deepseek_v3`; so is the
text model of the multimodal Kimi-K2.5 (`kimi_k25`, under `text_config`, whose model_type is kimi_k2 or deepseek_v3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp


class DeepseekV3Fields(HFFields):
    n_routed_experts: int = hf_field(names=("n_routed_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width
    n_shared_experts: int = hf_field(1, ge=0)
    first_k_dense_replace: int = hf_field(3, ge=0)  # absent fields: DeepseekV3Config's defaults
    moe_layer_freq: int | None = None
    scoring_func: str | None = None
    topk_method: str | None = None
    norm_topk_prob: bool = True
    routed_scaling_factor: Number = 2.5
    n_group: int = hf_field(8, ge=1)
    topk_group: int = hf_field(4, ge=1)
    hidden_act: Activation = "silu"
    aux_loss_alpha: Number = hf_field(0.0, ge=0)
    seq_aux: bool = False


def moe_layers(hf: DeepseekV3Fields) -> tuple[int, ...]:
    return tuple(range(hf.first_k_dense_replace, hf.num_hidden_layers))


def listed_moe_layers(hf: Any) -> tuple[int, ...]:
    """The layers whose `mlp_layer_types` entry is "sparse" (transformers' DeepSeek-V3.2, GLM-5, ...); without the
    list, every layer from first_k_dense_replace on."""
    if hf.mlp_layer_types is None:
        return moe_layers(hf)
    return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")


def check_layer_types(hf: Any, context: Context) -> None:
    """mlp_layer_types has one entry per decoder layer, as transformers checks."""
    if hf.mlp_layer_types is not None and len(hf.mlp_layer_types) != hf.num_hidden_layers:
        context.problem(
            "mlp_layer_types", f"has {len(hf.mlp_layer_types)} entries: expected one per decoder layer (num_hidden_layers {hf.num_hidden_layers})"
        )


def check(hf: DeepseekV3Fields, context: Context, scoring: str = "sigmoid", method: str = "noaux_tc", name: str = "DeepSeek-V3") -> None:
    """The settings transformers' DeepSeek-V3 block ignores but a config.json may carry: refused unless they agree."""
    context.unsupported_unless(
        "moe_layer_freq", lambda value: value == 1,
        "transformers makes every layer from first_k_dense_replace on an MoE layer, DeepSeek's own code only every "
        "moe_layer_freq-th: which layers are MoE is ambiguous; set it to 1",
    )
    context.unsupported_unless("scoring_func", lambda value: value == scoring, f"{name} scores with {scoring}")
    context.unsupported_unless("topk_method", lambda value: value == method, f"{name} routes with {method} (group-limited, aux-free bias)")


def dense_layer(out: Conversion, hf: DeepseekV3Fields, context: Context) -> None:
    if hf.intermediate_size is None:
        context.problem("intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
        return
    dense(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))


def routed_experts(
    out: Conversion, hf: DeepseekV3Fields, context: Context, block: str = "DeepseekV3MoE", placement: str = "layer >= first_k_dense_replace"
) -> None:
    """The experts: n_routed_experts + n_shared_experts (one MLP of width moe_intermediate_size × n_shared_experts)."""
    shared = hf.n_shared_experts
    out.set("type", "moe", f"{block}: {placement}")
    out.set("experts", hf.n_routed_experts + shared, "n_routed_experts + n_shared_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    if shared:
        out.set("shared_experts", shared, f"{context.named('n_shared_experts')}: one MLP of width moe_intermediate_size × n_shared_experts")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))


def groups(out: Conversion, hf: DeepseekV3Fields, context: Context) -> None:
    if hf.n_group > 1:
        out.set("expert_groups", hf.n_group, context.named("n_group"))
        out.set("expert_groups_per_token", hf.topk_group, context.named("topk_group"))


def converter(block: str, name: str, placement: str = "layer >= first_k_dense_replace") -> Callable[[Conversion, Any, Context], None]:
    """The `convert` of a family whose MoE block is DeepSeek-V3's (`block`, the model `name` for messages)."""

    def convert(out: Conversion, hf: DeepseekV3Fields, context: Context) -> None:
        check(hf, context, name=name)
        if not out.is_moe:
            return dense_layer(out, hf, context)
        routed_experts(out, hf, context, block=block, placement=placement)
        sigmoid_routing(out, hf, context)

    return convert


def sigmoid_routing(out: Conversion, hf: DeepseekV3Fields, context: Context) -> None:
    """DeepseekV3TopkRouter: sigmoid, group-limited top-k of scores + e_score_correction_bias, renormalised, × scale."""
    out.set("routing", "aux_free", "noaux_tc: e_score_correction_bias serves the choice only")
    out.set("router_score_function", "sigmoid", "scoring_func sigmoid")
    out.set("normalize_expert_weights", hf.norm_topk_prob, context.named("norm_topk_prob"))
    out.set("routed_scaling_factor", hf.routed_scaling_factor, context.named("routed_scaling_factor"))
    groups(out, hf, context)
    out.set("router_dtype", "float32", "DeepseekV3TopkRouter upcasts the router linear to float32")
    if hf.seq_aux and hf.aux_loss_alpha:
        out.set(
            "sequence_auxiliary_loss_coefficient", hf.aux_loss_alpha,
            "aux_loss_alpha with seq_aux: this config.json's value (the DeepSeek-V3 report trained with 0.0001); "
            "HF transformers computes no auxiliary loss",
        )


def tensors(config) -> list[Tensors]:
    table = [Tensors(("gate.weight",), "router.weight"), Tensors(("gate.e_score_correction_bias",), "router_correction_bias"), *fused_experts()]
    return table + (gated_mlp("shared_experts", "shared") if config.shared_experts else [])


convert = converter("DeepseekV3MoE", "DeepSeek-V3")

FAMILY = Family(
    model_types=("deepseek_v3", "kimi_k2"),
    fields=DeepseekV3Fields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block="DeepseekV3MoE",
    wrappers={"kimi_k25": "text_config"},
    hf_modules=("deepseek_v3", "kimi_k25"),
    note=(
        "sigmoid scores, group-limited top-k (group score: sum of its top-2) on scores + e_score_correction_bias, renormalised "
        "(norm_topk_prob) × routed_scaling_factor, n_shared_experts; dense MLPs before first_k_dense_replace; "
        "kimi_k2 is this architecture, kimi_k25 its multimodal wrapper (text_config)"
    ),
)
