"""Granite-MoE-Hybrid (`GraniteMoeHybridDecoderLayer`'s feed-forward, Granite 4.0): Granite-MoE's block
(`block_sparse_moe`: top-k of the logits, softmax over the k chosen) plus the decoder layer's `shared_mlp`
(gated, shared_intermediate_size), which every layer has; with num_local_experts 0 the layers are dense (the
shared MLP alone). The Mamba-2 and attention token mixers (layer_types) are outside the MLP. As for
Granite-MoE-Shared, the HF block imported is the decoder layer (or a mapping of its feed-forward tensors).
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.granitemoe import routed
from fastmoe_cfg.hf.families.granitemoeshared import GraniteMoeSharedFields, select_state, tensors
from fastmoe_cfg.hf.fields import hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, dense


class GraniteMoeHybridFields(GraniteMoeSharedFields):
    num_local_experts: int = hf_field(names=("num_local_experts", "num_experts"), ge=0)  # 0: dense layers
    num_experts_per_tok: int | None = hf_field(None, ge=1)  # required with experts
    intermediate_size: int | None = hf_field(None, ge=1)  # the experts' width, required with experts
    shared_intermediate_size: int = hf_field(1024, ge=1)  # GraniteMoeHybridConfig's default


def moe_layers(hf: GraniteMoeHybridFields) -> tuple[int, ...]:
    return tuple(range(hf.num_hidden_layers)) if hf.num_local_experts > 0 else ()


def convert(out: Conversion, hf: GraniteMoeHybridFields, context: Context) -> None:
    shared = hf.shared_intermediate_size
    if not out.is_moe:  # num_local_experts 0
        dense(out, shared, context.named("shared_intermediate_size"), hf.hidden_act, context.named("hidden_act"))
        out.sources["type"] = "num_local_experts 0: the decoder layer's shared_mlp alone"
        return
    for name in ("num_experts_per_tok", "intermediate_size"):
        if getattr(hf, name) is None:
            context.problem(name, "missing: expected an integer (the model has experts: num_local_experts > 0)")
    if context.problems:
        return
    out.set("type", "moe", "GraniteMoeHybridDecoderLayer: block_sparse_moe + shared_mlp in every decoder layer")
    out.set("experts", hf.num_local_experts + 1, "num_local_experts + the shared MLP")
    out.set("shared_experts", 1, "shared_mlp: one gated MLP on every token, added to the MoE block's output")
    out.set("shared_expert_intermediate_size", shared, context.named("shared_intermediate_size"))
    routed(out, hf, context, "GraniteMoeHybridTopKRouter")


FAMILY = Family(
    model_types=("granitemoehybrid",),
    fields=GraniteMoeHybridFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block="GraniteMoeHybridDecoderLayer",
    hf_modules=("granitemoehybrid",),
    select_state=select_state,
    note="Granite-MoE's block plus the decoder layer's shared_mlp (always there: shared_intermediate_size) as one shared expert; num_local_experts 0: dense layers; Mamba layers outside the MLP",
)
