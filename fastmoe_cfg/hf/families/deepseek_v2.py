"""DeepSeek-V2 (`DeepseekV2Moe`): softmax scores in float32; `topk_method` greedy (plain top-k) or
group_limited_greedy (the experts of the topk_group groups with the best MAX score, n_group groups); the weights
are the chosen scores, never renormalised (transformers ignores norm_topk_prob), × routed_scaling_factor;
n_shared_experts as one MLP of width moe_intermediate_size × n_shared_experts; dense MLPs before
first_k_dense_replace. transformers computes no auxiliary loss; DeepSeek's own code trains with aux_loss_alpha,
sequence-wise with seq_aux (mapped as for DeepSeek-V3)."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import check, moe_layers
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp

BLOCK = "DeepseekV2Moe"
METHODS = ("greedy", "group_limited_greedy")


class DeepseekV2Fields(HFFields):
    n_routed_experts: int = hf_field(names=("n_routed_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width
    n_shared_experts: int = hf_field(2, ge=0)  # absent fields: DeepseekV2Config's defaults
    first_k_dense_replace: int = hf_field(0, ge=0)
    topk_method: str = "greedy"
    n_group: int | None = hf_field(None, ge=1)
    topk_group: int | None = hf_field(None, ge=1)
    norm_topk_prob: bool = False
    routed_scaling_factor: Number = 1.0
    hidden_act: Activation = "silu"
    mlp_bias: bool = False
    moe_layer_freq: int | None = None  # DeepSeek's own code's fields, which transformers does not read
    scoring_func: str | None = None
    aux_loss_alpha: Number = hf_field(0.0, ge=0)
    seq_aux: bool = False


def convert(out: Conversion, hf: DeepseekV2Fields, context: Context) -> None:
    check(hf, context, scoring="softmax", method=hf.topk_method, name="DeepSeek-V2")
    if hf.topk_method not in METHODS:
        context.problem("topk_method", f"{hf.topk_method!r} cannot be converted: transformers' DeepSeek-V2 routes with greedy or group_limited_greedy")
    if not out.is_moe:
        if hf.intermediate_size is None:
            context.problem("intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
            return
        dense(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
        if hf.mlp_bias:
            out.set("add_linear_biases", True, "mlp_bias")
        return
    context.unsupported_unless(
        "mlp_bias", lambda value: value is False,
        "transformers' DeepSeek-V2 gives biases to the shared experts but not to the routed experts, which one MoE layer here cannot express",
    )
    context.unsupported_unless(
        "norm_topk_prob", lambda value: value is False,
        "transformers' DeepSeek-V2 never renormalises the top-k weights, DeepSeek's own code does (instead of routed_scaling_factor): "
        "which one the checkpoint needs is ambiguous; set it to false",
    )
    grouped = hf.topk_method == "group_limited_greedy"
    if grouped:
        for name in ("n_group", "topk_group"):
            if getattr(hf, name) is None:
                context.problem(name, "missing: expected an integer (group_limited_greedy needs n_group and topk_group)")
    if context.problems:
        return
    shared = hf.n_shared_experts
    out.set("type", "moe", f"{BLOCK}: layer >= first_k_dense_replace")
    out.set("experts", hf.n_routed_experts + shared, "n_routed_experts + n_shared_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    if shared:
        out.set("shared_experts", shared, f"{context.named('n_shared_experts')}: one MLP of width moe_intermediate_size × n_shared_experts")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    out.set("routing", "aux_loss", f"{context.named('topk_method')}: top-k of the softmax scores")
    out.set("router_score_function", "softmax", "DeepseekV2TopkRouter: softmax in float32")
    out.set("normalize_expert_weights", False, "transformers' DeepSeek-V2 never renormalises the top-k weights")
    out.set("routed_scaling_factor", hf.routed_scaling_factor, context.named("routed_scaling_factor"))
    if grouped:
        out.set("expert_groups", hf.n_group, "n_group (group_limited_greedy)")
        out.set("expert_groups_per_token", hf.topk_group, "topk_group")
        out.set("expert_group_score", "max", "group_limited_greedy: a group's score is its best expert's")
    out.set("router_dtype", "float32", "DeepseekV2TopkRouter upcasts the router linear to float32")
    losses(out, hf, context)


def losses(out: Conversion, hf: DeepseekV2Fields, context: Context) -> None:
    """transformers adds none; DeepSeek's code: aux_loss_alpha, per sequence with seq_aux (DeepSeek-V3's form), else
    over the batch with the assignments' fraction (Σf = 1): our per-layer coefficient × k."""
    alpha, k = hf.aux_loss_alpha, hf.num_experts_per_tok
    if alpha and hf.seq_aux:
        grouped = " (DeepSeek's code counts the group-limited choice in f, this layer the top-k over all experts)" if out.data.get("expert_groups") else ""
        out.set("auxiliary_loss_coefficient", 0.0, "aux_loss_alpha applies per sequence (seq_aux)")
        out.set(
            "sequence_auxiliary_loss_coefficient", alpha,
            f"aux_loss_alpha with seq_aux: this config.json's value{grouped}; HF transformers computes no auxiliary loss",
        )
    elif alpha:
        out.set(
            "auxiliary_loss_coefficient", alpha / k,
            "aux_loss_alpha / num_experts_per_tok: DeepSeek's batch-level loss counts the assignments' fraction (Σf = 1); "
            "HF transformers computes no auxiliary loss",
        )
    else:
        out.set("auxiliary_loss_coefficient", 0.0, f"{context.named('aux_loss_alpha')}: transformers' DeepSeek-V2 adds no load-balancing loss")


def tensors(config) -> list[Tensors]:
    table = [Tensors(("gate.weight",), "router.weight"), *fused_experts()]
    return table + (gated_mlp("shared_experts", "shared") if config.shared_experts else [])


FAMILY = Family(
    model_types=("deepseek_v2",),
    fields=DeepseekV2Fields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("deepseek_v2",),
    note=(
        "softmax top-k (greedy), or group-limited by each group's max score (group_limited_greedy: expert_group_score max), "
        "never renormalised, × routed_scaling_factor, n_shared_experts; dense MLPs before first_k_dense_replace"
    ),
)
