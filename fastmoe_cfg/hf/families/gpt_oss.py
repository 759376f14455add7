"""GPT-OSS (`GptOssMLP`): top-k of the router logits (with bias), softmax over the k, clamped GLU experts with biases."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, aux_loss, every_layer, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, gate_first, interleaved, transposed
from fastmoe_cfg.schemas.mlp import GPT_OSS_ALPHA, GPT_OSS_LIMIT


class GptOssFields(HFFields):
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    experts_per_token: int | None = None  # openai's config.json repeats k under this name, which transformers does not read
    intermediate_size: int = hf_field(ge=1)
    hidden_act: str | None = None  # not used: GptOssExperts' clamped GLU
    swiglu_limit: Number = GPT_OSS_LIMIT
    swiglu_alpha: Number | None = None
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def convert(out: Conversion, hf: GptOssFields, context: Context) -> None:
    k = hf.num_experts_per_tok
    context.unsupported_unless("experts_per_token", lambda value: value == k, f"disagrees with num_experts_per_tok ({k}), which transformers uses")
    context.unsupported_unless("swiglu_alpha", lambda value: value == GPT_OSS_ALPHA, f"our gpt_oss_glu has alpha {GPT_OSS_ALPHA}, as HF's experts")
    out.set("type", "moe", "GptOssMLP in every decoder layer")
    out.set("experts", hf.num_local_experts, "num_local_experts")
    out.set("experts_per_token", k, "num_experts_per_tok")
    out.set("intermediate_size", hf.intermediate_size, "intermediate_size")
    out.set("gated", True, "gate_up_proj, gate and up interleaved")
    out.set("activation", "gpt_oss_glu", "GptOssExperts' clamped GLU (hidden_act is not used)")
    out.set("activation_limit", hf.swiglu_limit, context.named("swiglu_limit"))
    out.set("add_linear_biases", True, "gate_up_proj_bias and down_proj_bias")
    out.set("router_bias", {"enabled": True}, "router.bias")
    routed_softmax(
        out, normalize=True, normalize_source="top-k of the logits, softmax over the k chosen",
        scores="softmax (HF takes it in the logits' dtype, ours in float32 at least: equal in float32)",
    )
    aux_loss(out, context, hf.router_aux_loss_coef)


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("router.weight",), "router.weight"),
        Tensors(("router.bias",), "router.bias"),
        Tensors(
            ("experts.gate_up_proj",), "experts.layer_1.weight",
            lambda t: gate_first(t[0]).transpose(1, 2), lambda t: [interleaved(t.transpose(1, 2))],
        ),
        Tensors(("experts.gate_up_proj_bias",), "experts.layer_1.bias", lambda t: gate_first(t[0]), lambda t: [interleaved(t)]),
        transposed("experts.down_proj", "experts.layer_2.weight"),
        Tensors(("experts.down_proj_bias",), "experts.layer_2.bias"),
    ]


FAMILY = Family(
    model_types=("gpt_oss",),
    fields=GptOssFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block="GptOssMLP",
)
