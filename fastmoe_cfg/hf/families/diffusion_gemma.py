"""DiffusionGemma text model (`diffusion_gemma_text`, under `text_config` of `diffusion_gemma`): the feed-forward of
`DiffusionGemmaEncoderTextLayer` and `DiffusionGemmaDecoderTextLayer`, Gemma-4's line for line (transformers 5.x):

    post_feedforward_layernorm(post_feedforward_layernorm_1(mlp(pre_feedforward_layernorm(x)))
                               + post_feedforward_layernorm_2(experts(pre_feedforward_layernorm_2(x), router(x))))

in every layer (no enable_moe_block; no double-wide MLP), as `hybrid_moe`; with `moe_only`, the MoE branch alone. The
encoder and the decoder each build num_hidden_layers such layers from the one text_config, with their own weights:
a converted layer is either's (`convert --all-layers` writes one stack of num_hidden_layers, which both follow).
The layer's layer_scalar multiplies the residual sum, outside the feed-forward.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.gemma4 import routed, select_state, tensors
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, every_layer, gated_experts

LAYERS = "DiffusionGemmaEncoderTextLayer / DiffusionGemmaDecoderTextLayer"


class DiffusionGemmaTextFields(HFFields):
    num_experts: int = hf_field(ge=1)  # None in DiffusionGemmaTextConfig, with which no layer can be built
    top_k_experts: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    hidden_activation: Activation = "gelu_pytorch_tanh"
    rms_norm_eps: Number = 1e-6


def convert(out: Conversion, hf: DiffusionGemmaTextFields, context: Context) -> None:
    epsilon = hf.rms_norm_eps
    if out.moe_only:
        out.set("type", "moe", f"the MoE branch of every {LAYERS} (its parallel dense MLP is not part of it)")
        routed(out, hf, context, router_normalization={"type": "rms_norm", "epsilon": epsilon, "weight": {"enabled": False}})
        return
    out.set("type", "hybrid_moe", f"{LAYERS}' feed-forward: its dense MLP and its MoE block on the residual, summed")
    dense = Conversion(family=out.family, layer=out.layer, layers=out.layers, hidden_size=out.hidden_size)
    gated_experts(dense, hf.intermediate_size, "intermediate_size", hf.hidden_activation, context.named("hidden_activation"))
    dense.set("pre_norm", {"type": "rms_norm", "epsilon": epsilon}, "pre_feedforward_layernorm")
    dense.set("post_norm", {"type": "rms_norm", "epsilon": epsilon}, "post_feedforward_layernorm_1")
    branch = Conversion(family=out.family, layer=out.layer, layers=out.layers, hidden_size=out.hidden_size)
    routed(branch, hf, context, router_normalization={"type": "fixed_rms_norm", "epsilon": epsilon})
    out.set("dense", dense.data, "mlp (DiffusionGemmaText4MLP, gated, hidden_activation), pre_feedforward_layernorm, post_feedforward_layernorm_1 (rms_norm_eps)")
    out.set(
        "routed", branch.data,
        "router, experts (num_experts, top_k_experts, moe_intermediate_size), pre_/post_feedforward_layernorm_2 (rms_norm_eps)",
    )
    out.set("post_norm", {"type": "rms_norm", "epsilon": epsilon}, "post_feedforward_layernorm, on the sum (rms_norm_eps)")


FAMILY = Family(
    model_types=("diffusion_gemma_text",),
    fields=DiffusionGemmaTextFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block="DiffusionGemmaDecoderTextLayer",
    wrappers={"diffusion_gemma": "text_config"},
    moe_only=True,
    hf_modules=("diffusion_gemma",),
    select_state=select_state,
    note=(
        "text_config of diffusion_gemma: Gemma-4's feed-forward (dense MLP + MoE branch: scaled RMS-normed router, softmax "
        "top-k, per_expert_scale) in every encoder and decoder layer, as hybrid_moe (--moe-only: the MoE branch)"
    ),
)
