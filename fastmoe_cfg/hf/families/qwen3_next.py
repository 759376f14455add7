"""Qwen3-Next (`Qwen3NextSparseMoeBlock`): Qwen2-MoE's block (softmax top-k, renormalised with norm_topk_prob, one
shared expert scaled by sigmoid(shared_expert_gate(x))), norm_topk_prob true by default; MoE layers as Qwen's
(mlp_only_layers, decoder_sparse_step), the gated DeltaNet / attention token mixers are outside the MLP."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.qwen2_moe import Qwen2MoeFields, convert, tensors
from fastmoe_cfg.hf.families.qwen3_moe import qwen_moe_layers


class Qwen3NextFields(Qwen2MoeFields):
    norm_topk_prob: bool = True  # Qwen3NextConfig's default (Qwen2-MoE's is false)


FAMILY = Family(
    model_types=("qwen3_next",),
    fields=Qwen3NextFields,
    moe_layers=qwen_moe_layers,
    convert=convert,
    tensors=tensors,
    block="Qwen3NextSparseMoeBlock",
    hf_modules=("qwen3_next",),
    note="Qwen2-MoE's block: softmax top-k (norm_topk_prob, true by default), one shared expert × sigmoid(shared_expert_gate(x)); dense MLPs in mlp_only_layers and off decoder_sparse_step",
)
