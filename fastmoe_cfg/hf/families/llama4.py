"""Llama-4 text (`Llama4TextMoe`): the router's top-k logits through a sigmoid (the others weigh 0), the weight
multiplying the expert's input (`router_weight_on_input`), plus one shared expert of intermediate_size; dense MLPs
of intermediate_size_mlp off the MoE layers (moe_layers, else every interleave_moe_layer_step-th layer).

transformers runs every expert on every token, each input scaled by its weight (0 off the top-k): with experts
without biases an expert of weight 0 gives 0, so this is the top-k MoE. Experts are stored transposed
(`experts.gate_up_proj` [E, H, 2I], gate columns first; `experts.down_proj` [E, I, H]). The multimodal `llama4`
config holds the text model under `text_config`.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts
from fastmoe_cfg.hf.weights import Tensors, gated_mlp, transposed


class Llama4TextFields(HFFields):
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=1)
    num_experts_per_tok: int = hf_field(1, ge=1)  # Llama4TextConfig's default
    intermediate_size: int = hf_field(ge=1)
    intermediate_size_mlp: int | None = hf_field(None, ge=1)  # the dense layers' width (required where there are some)
    moe_layers: list[int] | None = None
    interleave_moe_layer_step: int = hf_field(1, ge=1)
    hidden_act: Activation = "silu"
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    router_jitter_noise: Number = hf_field(0.0, ge=0)
    output_router_logits: bool = False


def moe_layers(hf: Llama4TextFields) -> tuple[int, ...]:
    """As Llama4TextDecoderLayer: `layer_idx in config.moe_layers` (an index outside the model places nothing)."""
    if hf.moe_layers is not None:
        return tuple(sorted({index for index in hf.moe_layers if 0 <= index < hf.num_hidden_layers}))
    step = hf.interleave_moe_layer_step
    return tuple(range(step - 1, hf.num_hidden_layers, step))


NOT_READ = (
    "transformers' Llama-4 computes no load-balancing loss and reads neither router_aux_loss_coef nor router_jitter_noise"
)


def convert(out: Conversion, hf: Llama4TextFields, context: Context) -> None:
    if not out.is_moe:
        if hf.intermediate_size_mlp is None:
            context.problem("intermediate_size_mlp", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
            return
        return dense(out, hf.intermediate_size_mlp, "intermediate_size_mlp", hf.hidden_act, context.named("hidden_act"))
    context.unsupported_unless(
        "num_experts_per_tok", lambda k: k == 1,
        "Llama4TextMoe multiplies each chosen expert's input by its weight; our router_weight_on_input needs one expert per token "
        "(every published Llama-4 has 1)",
    )
    placed = "moe_layers" if hf.moe_layers is not None else f"every {context.named('interleave_moe_layer_step')}-th layer"
    out.set("type", "moe", f"Llama4TextMoe: {placed}")
    out.set("experts", hf.num_local_experts + 1, "num_local_experts + the shared expert")
    out.set("experts_per_token", hf.num_experts_per_tok, context.named("num_experts_per_tok"))
    out.set("shared_experts", 1, "shared_expert: one gated MLP of intermediate_size on every token, weight 1")
    gated_experts(out, hf.intermediate_size, "intermediate_size", hf.hidden_act, context.named("hidden_act"))
    out.set("routing", "aux_loss", "top-k of the router logits")
    out.set("router_score_function", "sigmoid", "Llama4Router: sigmoid of the top-k logits (float32), the others weigh 0")
    out.set("normalize_expert_weights", False, "Llama4Router: the weight is the sigmoid itself")
    out.set("router_weight_on_input", True, "Llama4TextMoe multiplies each expert's input by its weight")
    out.set("router_dtype", "input", "Llama4Router runs the router linear in the model dtype")
    out.set("auxiliary_loss_coefficient", 0.0, NOT_READ)


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("router.weight",), "router.weight"),
        transposed("experts.gate_up_proj", "experts.layer_1.weight"),
        transposed("experts.down_proj", "experts.layer_2.weight"),
        *gated_mlp("shared_expert", "shared"),
    ]


FAMILY = Family(
    model_types=("llama4_text",),
    fields=Llama4TextFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block="Llama4TextMoe",
    wrappers={"llama4": "text_config"},
    hf_modules=("llama4",),
    note="sigmoid of the top-k logits (k = 1 published) multiplying the expert input, one shared expert; dense MLPs (intermediate_size_mlp) off moe_layers / interleave_moe_layer_step; no load-balancing loss in transformers",
)
