"""OpenAI Privacy Filter (`openai_privacy_filter`, `OpenAIPrivacyFilterMLP`, a token classifier): GPT-OSS's block in
float32. `OpenAIPrivacyFilterTopKRouter` (a linear with bias, upcast to float32) takes the top-k of the logits and the
softmax over the k, divided by k; the block multiplies the experts' weighted sum by k again (the two cancel: the weights
are the softmax over the k). `OpenAIPrivacyFilterExperts` have biases and GPT-OSS's clamped GLU, with gate and up as
the two halves of gate_up_proj's last dimension (not interleaved), stored transposed ([E, H, 2I], down_proj [E, I, H]).

Its model adds no load-balancing loss (router_aux_loss_coef is not used): auxiliary_loss_coefficient 0.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, every_layer, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, transposed
from fastmoe_cfg.schemas.mlp import GPT_OSS_ALPHA, GPT_OSS_LIMIT

BLOCK = "OpenAIPrivacyFilterMLP"


class OpenAIPrivacyFilterFields(HFFields):
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    intermediate_size: int = hf_field(ge=1)
    swiglu_alpha: Number = GPT_OSS_ALPHA  # OpenAIPrivacyFilterConfig's defaults
    swiglu_limit: Number = GPT_OSS_LIMIT


def convert(out: Conversion, hf: OpenAIPrivacyFilterFields, context: Context) -> None:
    context.unsupported_unless(
        "swiglu_alpha", lambda value: value == GPT_OSS_ALPHA, f"our gpt_oss_glu has alpha {GPT_OSS_ALPHA} (the sigmoid-GELU constant), fixed"
    )
    out.set("type", "moe", f"{BLOCK} in every encoder layer")
    out.set("experts", hf.num_local_experts, "num_local_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    out.set("intermediate_size", hf.intermediate_size, "intermediate_size")
    out.set("gated", True, "gate_up_proj: gate, then up, along its last dimension")
    out.set("activation", "gpt_oss_glu", f"OpenAIPrivacyFilterExperts' clamped GLU ({context.named('swiglu_alpha')})")
    out.set("activation_limit", hf.swiglu_limit, context.named("swiglu_limit"))
    out.set("add_linear_biases", True, "gate_up_proj_bias and down_proj_bias")
    out.set("router_bias", {"enabled": True}, "router.bias")
    routed_softmax(
        out, normalize=True, normalize_source="top-k of the logits, softmax over the k chosen (÷ k in the router, × k after the experts: cancelled)",
        scores="softmax of the k chosen logits, in float32",
    )
    out.set("router_dtype", "float32", "OpenAIPrivacyFilterTopKRouter upcasts the router linear to float32")
    out.set("auxiliary_loss_coefficient", 0.0, "transformers' OpenAIPrivacyFilter adds no load-balancing loss")


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("router.weight",), "router.weight"),
        Tensors(("router.bias",), "router.bias"),
        transposed("experts.gate_up_proj", "experts.layer_1.weight"),
        Tensors(("experts.gate_up_proj_bias",), "experts.layer_1.bias"),
        transposed("experts.down_proj", "experts.layer_2.weight"),
        Tensors(("experts.down_proj_bias",), "experts.layer_2.bias"),
    ]


FAMILY = Family(
    model_types=("openai_privacy_filter",),
    fields=OpenAIPrivacyFilterFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("openai_privacy_filter",),
    note=(
        "GPT-OSS's block in float32: top-k of the logits (router bias), softmax over the k (÷ k then × k: cancelled), "
        "clamped GLU experts with biases, gate and up halves not interleaved; swiglu_alpha other than 1.702 refused"
    ),
)
