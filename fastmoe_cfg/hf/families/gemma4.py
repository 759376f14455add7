"""Gemma-4 text (`Gemma4TextDecoderLayer`'s feed-forward), around its residual x (transformers 5.x):

    post_feedforward_layernorm(post_feedforward_layernorm_1(mlp(pre_feedforward_layernorm(x)))
                               + post_feedforward_layernorm_2(experts(pre_feedforward_layernorm_2(x), router(x))))

as `hybrid_moe`; with `moe_only`, the MoE branch alone (router, experts and the two *_2 norms) as `moe`.
The multimodal `gemma4` config holds it under `text_config`.
"""

from __future__ import annotations

from typing import Any

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, gated_experts, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp
from fastmoe_cfg.schemas.hybrid import HybridMoEMLPConfig


class Gemma4Fields(HFFields):
    enable_moe_block: bool = False
    num_experts: int | None = hf_field(None, ge=1)
    top_k_experts: int | None = hf_field(None, ge=1)
    moe_intermediate_size: int | None = hf_field(None, ge=1)
    intermediate_size: int = hf_field(ge=1)
    hidden_activation: Activation = "gelu_pytorch_tanh"
    rms_norm_eps: Number = 1e-6
    use_double_wide_mlp: bool = False
    num_kv_shared_layers: int = hf_field(0, ge=0)


def moe_layers(hf: Gemma4Fields) -> tuple[int, ...]:
    return tuple(range(hf.num_hidden_layers)) if hf.enable_moe_block else ()


def convert(out: Conversion, hf: Gemma4Fields, context: Context) -> None:
    if not hf.enable_moe_block:
        context.problem("enable_moe_block", "this Gemma-4 model has no MoE block (enable_moe_block is false or absent): nothing to convert")
        return
    for name in ("num_experts", "top_k_experts", "moe_intermediate_size"):
        if getattr(hf, name) is None:
            context.problem(name, "missing: expected an integer")
    if context.problems:
        return
    epsilon = hf.rms_norm_eps
    if out.moe_only:
        out.set("type", "moe", "the MoE branch of every Gemma4TextDecoderLayer (its parallel dense MLP is not part of it)")
        routed(out, hf, context, router_normalization={"type": "rms_norm", "epsilon": epsilon, "weight": {"enabled": False}})
        return
    out.set("type", "hybrid_moe", "Gemma4TextDecoderLayer's feed-forward: its dense MLP and its MoE block on the residual, summed")
    dense = Conversion(family=out.family, layer=out.layer, layers=out.layers, hidden_size=out.hidden_size)
    gated_experts(dense, hf.intermediate_size, "intermediate_size", hf.hidden_activation, context.named("hidden_activation"))
    # Gemma4TextMLP doubles its width on the layers that reuse another layer's KV cache (kv_sharing_modes "reuse":
    # the last num_kv_shared_layers) when use_double_wide_mlp is set.
    shared_kv = hf.num_kv_shared_layers
    if hf.use_double_wide_mlp and out.layer >= out.layers - shared_kv:
        dense.set(
            "intermediate_size", 2 * hf.intermediate_size,
            f"2 × intermediate_size: use_double_wide_mlp, and layer {out.layer} is one of the last num_kv_shared_layers ({shared_kv}), which reuse a KV cache",
        )
    dense.set("pre_norm", {"type": "rms_norm", "epsilon": epsilon}, "pre_feedforward_layernorm")
    dense.set("post_norm", {"type": "rms_norm", "epsilon": epsilon}, "post_feedforward_layernorm_1")
    branch = Conversion(family=out.family, layer=out.layer, layers=out.layers, hidden_size=out.hidden_size)
    routed(branch, hf, context, router_normalization={"type": "fixed_rms_norm", "epsilon": epsilon})
    out.set("dense", dense.data, "mlp (Gemma4TextMLP, gated, hidden_activation), pre_feedforward_layernorm, post_feedforward_layernorm_1 (rms_norm_eps)")
    out.set(
        "routed", branch.data,
        "router, experts (num_experts, top_k_experts, moe_intermediate_size), pre_/post_feedforward_layernorm_2 (rms_norm_eps)",
    )
    out.set("post_norm", {"type": "rms_norm", "epsilon": epsilon}, "post_feedforward_layernorm, on the sum (rms_norm_eps)")


def routed(out: Conversion, hf: Gemma4Fields, context: Context, *, router_normalization: dict) -> None:
    """The MoE branch of Gemma4TextDecoderLayer: Gemma4TextRouter, Gemma4TextExperts and the *_2 norms."""
    rms = {"type": "rms_norm", "epsilon": hf.rms_norm_eps}
    out.set("experts", hf.num_experts, "num_experts")
    out.set("experts_per_token", hf.top_k_experts, "top_k_experts")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", hf.hidden_activation, context.named("hidden_activation"))
    routed_softmax(out, normalize=True, normalize_source="Gemma4TextRouter renormalises the top-k weights")
    out.set("router_normalization", router_normalization, "router.norm: RMSNorm without scale (rms_norm_eps)")
    out.set("router_scale", {"enabled": True}, "router.scale")
    out.set("router_input_scale", out.hidden_size**-0.5, "router: × hidden_size^-0.5")
    out.set("router_per_expert_scale", {"enabled": True}, "router.per_expert_scale")
    out.set("pre_norm", dict(rms), "pre_feedforward_layernorm_2 (rms_norm_eps)")
    out.set("post_norm", dict(rms), "post_feedforward_layernorm_2 (rms_norm_eps)")
    out.set("auxiliary_loss_coefficient", 0.0, "transformers' Gemma-4 adds no load-balancing loss")


def tensors(config) -> list[Tensors]:
    """Names inside Gemma4TextDecoderLayer; its other tensors are not the feed-forward's."""
    if isinstance(config, HybridMoEMLPConfig):  # the whole feed-forward: dense.*, routed.*, post_norm
        return [
            *gated_mlp("mlp", "dense"),
            Tensors(("pre_feedforward_layernorm.weight",), "dense.pre_norm.weight"),
            Tensors(("post_feedforward_layernorm_1.weight",), "dense.post_norm.weight"),
            *(Tensors(entry.hf, f"routed.{entry.ours}", entry.join, entry.split) for entry in moe_branch()),
            Tensors(("post_feedforward_layernorm.weight",), "post_norm.weight"),
        ]
    return moe_branch()


def moe_branch() -> list[Tensors]:
    """Gemma4TextDecoderLayer's MoE branch: Gemma4TextRouter, Gemma4TextExperts and the *_2 norms."""
    return [
        Tensors(("router.scale",), "router_scale"),
        Tensors(("router.proj.weight",), "router.weight"),
        Tensors(("router.per_expert_scale",), "router_per_expert_scale"),
        *fused_experts(),
        Tensors(("pre_feedforward_layernorm_2.weight",), "pre_norm.weight"),
        Tensors(("post_feedforward_layernorm_2.weight",), "post_norm.weight"),
    ]


MOE_MODULES = ("router", "experts", "pre_feedforward_layernorm_2", "post_feedforward_layernorm_2")
DENSE_MODULES = ("mlp", "pre_feedforward_layernorm", "post_feedforward_layernorm_1", "post_feedforward_layernorm")


def select_state(hf_block: Any, hybrid: bool) -> dict:
    """The tensors of the decoder layer's feed-forward modules only (the MoE branch's alone unless `hybrid`),
    from the layer or from a mapping of its tensors."""
    modules = MOE_MODULES + (DENSE_MODULES if hybrid else ())
    if isinstance(hf_block, dict):
        return {key: value for key, value in hf_block.items() if key.split(".", 1)[0] in modules}
    absent = [name for name in modules if not hasattr(hf_block, name)]
    if absent:
        raise ValueError(f"{type(hf_block).__name__} is not a Gemma-4 decoder layer with an MoE block: it has no {', '.join(absent)}")
    return {f"{name}.{key}": value for name in modules for key, value in getattr(hf_block, name).state_dict().items()}


FAMILY = Family(
    model_types=("gemma4_text",),
    fields=Gemma4Fields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block="Gemma4TextDecoderLayer",
    wrappers={"gemma4": "text_config"},
    moe_only=True,
    select_state=select_state,
)
