"""DBRX (`DbrxFFN`): softmax of the router logits (model dtype), top-k, the chosen weights divided by their p-norm
(ffn_config.moe_normalize_expert_weights = p; 1: their sum, none: not divided), SwiGLU experts, in every layer.

The MoE settings are nested under `ffn_config` (`DbrxFFNConfig`); the width and depth are `d_model` and `n_layers`.
Experts are stored per expert in rows: `experts.mlp.w1` (gate) and `experts.mlp.v1` (up) [E·I, H], `experts.mlp.w2`
[E·I, H] (down, transposed); the router is `router.layer.weight`. In training, DbrxRouter multiplies its input in
place by U(1 ± moe_jitter_eps) (the experts read the same tensor: our jitter on the layer input), and DbrxBlock
applies dropout(resid_pdrop) to the block's output.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from fastmoe_cfg.config.errors import did_you_mean
from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import MAX_LAYERS, Activation, HFFields, Number, hf_field, located
from fastmoe_cfg.hf.mapping import POOLED_AUX_LOSS, Context, Conversion, every_layer
from fastmoe_cfg.hf.weights import Tensors


class DbrxActivation(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    name: Activation = "silu"  # DbrxExpertGLU: ACT2FN[ffn_act_fn.get("name", "silu")]; the other keys are not read


class DbrxFFNFields(BaseModel):
    """`ffn_config` (DbrxFFNConfig): its sizes required (checked by `convert`, which names the nested field), its
    options at transformers' defaults."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    ffn_hidden_size: int | None = hf_field(None, ge=1)
    moe_num_experts: int | None = hf_field(None, ge=1)
    moe_top_k: int | None = hf_field(None, ge=1)
    ffn_act_fn: DbrxActivation | None = None
    moe_jitter_eps: Number | None = hf_field(None, ge=0)
    moe_loss_weight: Number = hf_field(0.01, ge=0)
    moe_normalize_expert_weights: Number | None = hf_field(1.0, gt=0)


class DbrxFields(HFFields):
    hidden_size: int = hf_field(names=("hidden_size", "d_model"), ge=1)
    num_hidden_layers: int = hf_field(names=("num_hidden_layers", "n_layers"), ge=1, le=MAX_LAYERS)
    ffn_config: DbrxFFNFields
    resid_pdrop: Number = hf_field(0.0, ge=0)
    output_router_logits: bool = False


SIZES = ("ffn_hidden_size", "moe_num_experts", "moe_top_k")


def _problem(context: Context, name: str, message: str) -> None:
    """A problem at ffn_config.`name`."""
    context.problems.append(located(context.source.select(("ffn_config",)), name, message))


def convert(out: Conversion, hf: DbrxFields, context: Context) -> None:
    ffn = hf.ffn_config
    written = [key for key in context.data["ffn_config"] if isinstance(key, str) and key not in DbrxFFNFields.model_fields]
    for name in SIZES:
        if getattr(ffn, name) is None:
            misspelt = did_you_mean(name, written)
            if misspelt is None:
                _problem(context, name, "missing: expected an integer")
            else:  # at the misspelt key, as read_fields does at the top level
                message = f"unknown field: a required field of ffn_config is {name}, which is absent"
                context.problems.append(context.source.select(("ffn_config",)).problem((misspelt,), "key", message=message, suggestion=name))
    if ffn.moe_jitter_eps is not None and ffn.moe_jitter_eps >= 1:
        _problem(context, "moe_jitter_eps", f"{ffn.moe_jitter_eps} cannot be converted: our jitter_eps is below 1 (a factor U(1 ± eps) >= 0)")
    if hf.resid_pdrop >= 1:
        context.problem("resid_pdrop", f"{hf.resid_pdrop} cannot be converted: our dropout is below 1")
    if context.problems:
        return
    out.set("type", "moe", "DbrxFFN in every decoder layer")
    out.set("experts", ffn.moe_num_experts, "ffn_config.moe_num_experts")
    out.set("experts_per_token", ffn.moe_top_k, "ffn_config.moe_top_k")
    out.set("intermediate_size", ffn.ffn_hidden_size, "ffn_config.ffn_hidden_size")
    out.set("gated", True, "DbrxExpertGLU: act(x · w1ᵀ) · (x · v1ᵀ)")
    activation = (ffn.ffn_act_fn or DbrxActivation()).name
    named = "ffn_config.ffn_act_fn.name" if ffn.ffn_act_fn is not None else "ffn_config.ffn_act_fn (absent: silu)"
    out.set("activation", activation, named)
    out.set("add_linear_biases", False, "no biases in the experts")
    out.set("routing", "aux_loss", "softmax top-k routing")
    out.set("router_score_function", "softmax", "DbrxFFN: softmax of the router logits (in their dtype: equal to ours in float32)")
    p = ffn.moe_normalize_expert_weights
    given = "moe_normalize_expert_weights" in ffn.model_fields_set
    source = "ffn_config.moe_normalize_expert_weights" + ("" if given else " (absent: transformers' default 1)")
    out.set("normalize_expert_weights", p is not None, f"{source}: the chosen weights / their p-norm" if p is not None else f"{source}: none")
    if p is not None and p != 1:
        out.set("expert_weights_norm_order", p, f"{source}: the p of the p-norm")
    out.set("router_dtype", "input", "DbrxRouter runs the router linear in the model dtype")
    if ffn.moe_jitter_eps:
        out.set("jitter_eps", ffn.moe_jitter_eps, "ffn_config.moe_jitter_eps: in training, DbrxRouter multiplies its input by U(1 ± eps)")
        out.set("jitter_target", "layer_input", "DbrxRouter multiplies its input in place: the experts read the jittered input too")
    given = "moe_loss_weight" in ffn.model_fields_set
    out.set(
        "auxiliary_loss_coefficient", ffn.moe_loss_weight,
        f"ffn_config.moe_loss_weight{'' if given else ' (absent: transformers default)'}; {POOLED_AUX_LOSS}",
    )
    if hf.resid_pdrop:
        out.set("dropout", hf.resid_pdrop, "resid_pdrop: DbrxBlock's dropout on the block output, in training")


def tensors(config) -> list[Tensors]:
    import torch

    experts, width = config.experts, config.intermediate_size

    def rows(tensor):  # [E·I, H] -> [E, I, H]
        return tensor.reshape(experts, width, -1)

    return [
        Tensors(("router.layer.weight",), "router.weight"),
        Tensors(
            ("experts.mlp.w1", "experts.mlp.v1"), "experts.layer_1.weight",
            lambda t: torch.cat([rows(t[0]), rows(t[1])], dim=1), lambda t: [half.reshape(experts * width, -1) for half in t.chunk(2, dim=1)],
        ),
        Tensors(
            ("experts.mlp.w2",), "experts.layer_2.weight",
            lambda t: rows(t[0]).transpose(1, 2), lambda t: [t.transpose(1, 2).reshape(experts * width, -1)],
        ),
    ]


FAMILY = Family(
    model_types=("dbrx",),
    fields=DbrxFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block="DbrxFFN",
    hf_modules=("dbrx",),
    note="softmax top-k, the weights / their p-norm (ffn_config.moe_normalize_expert_weights: expert_weights_norm_order), SwiGLU experts in rows (w1, v1, w2); input jitter in training; every layer",
)
