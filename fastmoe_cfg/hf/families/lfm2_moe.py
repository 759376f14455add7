"""LFM2-MoE (`Lfm2MoeSparseMoeBlock`): sigmoid scores, top-k on scores + `expert_bias` (use_expert_bias: the bias
chooses only), weights the chosen sigmoids / (their sum + 1e-6) with norm_topk_prob, × routed_scaling_factor; SwiGLU
experts (silu, fixed); dense MLPs (intermediate_size) in the first num_dense_layers layers. The short-convolution and
attention token mixers (layer_types) are outside the MLP. transformers adds no load-balancing loss for it.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense, gated_experts
from fastmoe_cfg.hf.weights import Tensors, fused_experts
from fastmoe_cfg.schemas.enums import RoutingType

EPSILON = 1e-6  # Lfm2MoeTopKRouter: routing_weights / (routing_weights.sum(dim=-1, keepdim=True) + 1e-6)
SILU = "silu (Lfm2MoeExperts and Lfm2MoeMLP apply F.silu; the config has no hidden_act)"


class Lfm2MoeFields(HFFields):
    num_experts: int = hf_field(names=("num_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width (required where there are some)
    num_dense_layers: int = hf_field(2, ge=0)  # Lfm2MoeConfig's defaults from here on
    use_expert_bias: bool = True
    norm_topk_prob: bool = True
    routed_scaling_factor: Number = hf_field(1.0, gt=0)
    output_router_logits: bool = False


def moe_layers(hf: Lfm2MoeFields) -> tuple[int, ...]:
    return tuple(range(hf.num_dense_layers, hf.num_hidden_layers))


def convert(out: Conversion, hf: Lfm2MoeFields, context: Context) -> None:
    if not out.is_moe:
        if hf.intermediate_size is None:
            context.problem("intermediate_size", f"missing: expected an integer (the dense MLP width of decoder layer {out.layer})")
            return
        return dense(out, hf.intermediate_size, "intermediate_size", "silu", SILU)
    out.set("type", "moe", f"Lfm2MoeSparseMoeBlock: layer >= {context.named('num_dense_layers')}")
    out.set("experts", hf.num_experts, "num_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    gated_experts(out, hf.moe_intermediate_size, "moe_intermediate_size", "silu", SILU)
    if hf.use_expert_bias:
        out.set("routing", "aux_free", f"{context.named('use_expert_bias')}: top-k of sigmoid + expert_bias, the bias chooses only")
    else:
        out.set("routing", "aux_loss", "use_expert_bias false: top-k of the sigmoid scores")
    out.set("router_score_function", "sigmoid", "Lfm2MoeTopKRouter: sigmoid of the router logits")
    out.set("normalize_expert_weights", hf.norm_topk_prob, context.named("norm_topk_prob"))
    if hf.norm_topk_prob:
        out.set("expert_weights_epsilon", EPSILON, "Lfm2MoeTopKRouter divides by the sum of the chosen weights + 1e-6")
    out.set("routed_scaling_factor", hf.routed_scaling_factor, context.named("routed_scaling_factor"))
    out.set("router_dtype", "input", "Lfm2MoeTopKRouter runs the router linear and the sigmoid in the model dtype")
    if not hf.use_expert_bias:
        out.set("auxiliary_loss_coefficient", 0.0, "transformers' LFM2-MoE computes no load-balancing loss")


def tensors(config) -> list[Tensors]:
    table = [Tensors(("gate.weight",), "router.weight"), *fused_experts()]
    if config.routing == RoutingType.aux_free:
        table.append(Tensors(("expert_bias",), "router_correction_bias"))
    return table


FAMILY = Family(
    model_types=("lfm2_moe",),
    fields=Lfm2MoeFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block="Lfm2MoeSparseMoeBlock",
    hf_modules=("lfm2_moe",),
    note="sigmoid scores, top-k on scores + expert_bias (aux_free), / (sum + 1e-6) with norm_topk_prob, × routed_scaling_factor; dense MLPs in the first num_dense_layers; no load-balancing loss in transformers",
)
