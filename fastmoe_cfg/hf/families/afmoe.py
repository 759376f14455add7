"""AFMoE (Arcee's Trinity, `AfmoeSparseMoeBlock`): DeepSeek-V3's block without expert groups. The router
(`router.gate`, a linear in the model's dtype whose logits are cast to float32) takes the sigmoid, picks the top-k of
scores + `expert_bias` (a buffer-like parameter serving the choice only), weights by the unbiased scores, always
renormalised, × route_scale; one shared MLP of width moe_intermediate_size × num_shared_experts on every token.
The first num_dense_layers decoder layers have a dense MLP (intermediate_size).

The decoder layer's pre_mlp_layernorm and post_mlp_layernorm wrap its MLP, dense or MoE alike, as its attention's
norms wrap the attention: they are the decoder layer's, outside the block.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp

BLOCK = "AfmoeSparseMoeBlock"


class AfmoeFields(HFFields):
    num_experts: int = hf_field(ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width
    num_shared_experts: int = hf_field(2, ge=0)  # AfmoeConfig's defaults
    route_scale: Number = 1.0
    num_dense_layers: int = hf_field(1, ge=0)
    hidden_act: Activation = "silu"
    # Written in Trinity's config.json, not read by transformers' Afmoe: accepted when they say what the block does.
    route_norm: bool | None = None
    score_func: str | None = None
    n_group: int | None = None
    topk_group: int | None = None
    num_expert_groups: int | None = None
    num_limited_groups: int | None = None


def moe_layers(hf: AfmoeFields) -> tuple[int, ...]:
    return tuple(range(hf.num_dense_layers, hf.num_hidden_layers))


def biased_sigmoid(out: Conversion, *, scale: float, scale_source: str, dtype: str, dtype_source: str, block: str) -> None:
    """A router that picks the top-k of sigmoid(logits) + a correction bias, weights by the unbiased sigmoid scores,
    always renormalised (+1e-20), × `scale`, without expert groups (AFMoE, Hunyuan-3, ...)."""
    out.set("routing", "aux_free", "the correction bias serves the choice only (aux-loss-free balancing)")
    out.set("router_score_function", "sigmoid", f"{block}: sigmoid of the router logits")
    out.set("normalize_expert_weights", True, f"{block} always renormalises the top-k weights (+1e-20)")
    out.set("routed_scaling_factor", scale, scale_source)
    out.set("router_dtype", dtype, dtype_source)


def ignored_settings(context: Context, block: str) -> None:
    """Trinity's own config.json keys that transformers' Afmoe does not read: refused unless they agree with it."""
    context.unsupported_unless("route_norm", lambda value: value is True, f"transformers' {block} always renormalises the top-k weights")
    context.unsupported_unless("score_func", lambda value: value == "sigmoid", f"transformers' {block} scores with sigmoid")
    for name in ("n_group", "topk_group", "num_expert_groups", "num_limited_groups"):
        context.unsupported_unless(name, lambda value: value == 1, f"transformers' {block} routes without expert groups")


def convert(out: Conversion, hf: AfmoeFields, context: Context) -> None:
    ignored_settings(context, BLOCK)
    if not out.is_moe:
        if hf.intermediate_size is None:
            context.problem("intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
            return
        return dense(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    shared = hf.num_shared_experts
    out.set("type", "moe", f"{BLOCK}: layer >= num_dense_layers")
    out.set("experts", hf.num_experts + shared, "num_experts + num_shared_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    if shared:
        out.set("shared_experts", shared, f"{context.named('num_shared_experts')}: one MLP of width moe_intermediate_size × num_shared_experts")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_act, context.named("hidden_act"))
    biased_sigmoid(
        out, scale=hf.route_scale, scale_source=context.named("route_scale"), block="AfmoeTokenChoiceRouter",
        dtype="input", dtype_source="router.gate runs in the model dtype, its logits are cast to float32",
    )


def tensors(config) -> list[Tensors]:
    table = [Tensors(("router.gate.weight",), "router.weight"), Tensors(("expert_bias",), "router_correction_bias"), *fused_experts()]
    return table + (gated_mlp("shared_experts", "shared") if config.shared_experts else [])


FAMILY = Family(
    model_types=("afmoe",),
    fields=AfmoeFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("afmoe",),
    note=(
        "DeepSeek-V3's block without groups: sigmoid, top-k on scores + expert_bias, always renormalised × route_scale, "
        "num_shared_experts; dense MLPs before num_dense_layers; Trinity's route_norm / score_func / group keys refused unless they agree"
    ),
)
