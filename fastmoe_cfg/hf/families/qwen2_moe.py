"""Qwen2-MoE (`Qwen2MoeSparseMoeBlock`): Qwen3-MoE's routing plus one shared expert whose output is scaled by
sigmoid(shared_expert_gate(x))."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.qwen3_moe import SPARSE, QwenMoeFields, dense_layer, qwen_moe_layers, routed
from fastmoe_cfg.hf.fields import hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp


class Qwen2MoeFields(QwenMoeFields):
    shared_expert_intermediate_size: int = hf_field(ge=1)


def convert(out: Conversion, hf: Qwen2MoeFields, context: Context) -> None:
    if not out.is_moe:
        return dense_layer(out, hf, context)
    shared_gated_expert(out, hf)
    routed(out, hf, context)


def shared_gated_expert(out: Conversion, hf: Qwen2MoeFields) -> None:
    """num_experts routed experts and one shared expert, gated by sigmoid(shared_expert_gate(x))."""
    out.set("type", "moe", SPARSE)
    out.set("experts", hf.num_experts + 1, "num_experts + the shared expert")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    out.set("shared_experts", 1, "shared_expert: one gated MLP on every token")
    out.set("shared_expert_intermediate_size", hf.shared_expert_intermediate_size, "shared_expert_intermediate_size")
    out.set("shared_expert_gate", {"enabled": True}, "shared_expert_gate: Linear(hidden, 1), output × sigmoid")


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("gate.weight",), "router.weight"),
        *fused_experts(),
        *gated_mlp("shared_expert", "shared"),
        Tensors(("shared_expert_gate.weight",), "shared_expert_gate", lambda t: t[0][0], lambda t: [t[None]]),
    ]


FAMILY = Family(
    model_types=("qwen2_moe",),
    fields=Qwen2MoeFields,
    moe_layers=qwen_moe_layers,
    convert=convert,
    tensors=tensors,
    block="Qwen2MoeSparseMoeBlock",
)
