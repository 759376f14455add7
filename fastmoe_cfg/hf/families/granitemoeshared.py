"""Granite-MoE-Shared (`GraniteMoeSharedDecoderLayer`'s feed-forward): Granite-MoE's block (`block_sparse_moe`: top-k
of the logits, softmax over the k chosen) plus, when shared_intermediate_size > 0, a gated MLP on every token
(`shared_mlp`: `input_linear` [2·I_s, H], gate rows first, and `output_linear` [H, I_s]), summed.

The shared MLP belongs to the decoder layer, not to the MoE block: the HF block imported is the decoder layer
(or a mapping of its tensors, `block_sparse_moe.*` and `shared_mlp.*`); its other tensors are not the MLP's.
Granite-MoE-SWA (`granitemoe_swa`: sliding-window attention with sinks, outside the MLP) has the same feed-forward.
"""

from __future__ import annotations

from typing import Any

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.granitemoe import GraniteMoeFields, routed, router_and_experts
from fastmoe_cfg.hf.fields import hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, every_layer
from fastmoe_cfg.hf.weights import Tensors


class GraniteMoeSharedFields(GraniteMoeFields):
    shared_intermediate_size: int = hf_field(0, ge=0)


def convert(out: Conversion, hf: GraniteMoeSharedFields, context: Context) -> None:
    out.set("type", "moe", "GraniteMoeSharedDecoderLayer: block_sparse_moe (+ shared_mlp) in every decoder layer")
    shared = hf.shared_intermediate_size
    if shared:
        out.set("experts", hf.num_local_experts + 1, "num_local_experts + the shared MLP")
        out.set("shared_experts", 1, "shared_mlp: one gated MLP on every token, added to the MoE block's output")
        out.set("shared_expert_intermediate_size", shared, "shared_intermediate_size")
    else:
        out.set("experts", hf.num_local_experts, f"num_local_experts; {context.named('shared_intermediate_size')} 0: no shared_mlp")
    routed(out, hf, context, "GraniteMoeSharedTopKRouter")


def tensors(config) -> list[Tensors]:
    table = router_and_experts("block_sparse_moe.")
    if config.shared_experts:
        table += [
            Tensors(("shared_mlp.input_linear.weight",), "shared.layer_1.weight"),
            Tensors(("shared_mlp.output_linear.weight",), "shared.layer_2.weight"),
        ]
    return table


MODULES = ("block_sparse_moe", "shared_mlp")


def select_state(hf_block: Any, hybrid: bool = False) -> dict:
    """The decoder layer's feed-forward tensors (`block_sparse_moe.*`, `shared_mlp.*`), from the layer or a mapping."""
    if isinstance(hf_block, dict):
        return {key: value for key, value in hf_block.items() if key.split(".", 1)[0] in MODULES}
    if not hasattr(hf_block, "block_sparse_moe"):
        raise ValueError(
            f"{type(hf_block).__name__} is not a Granite-MoE-Shared decoder layer: it has no block_sparse_moe "
            "(the shared MLP is the decoder layer's: import GraniteMoeSharedDecoderLayer)"
        )
    return {
        f"{name}.{key}": value
        for name in MODULES if getattr(hf_block, name, None) is not None
        for key, value in getattr(hf_block, name).state_dict().items()
    }


FAMILY = Family(
    model_types=("granitemoeshared", "granitemoe_swa"),
    fields=GraniteMoeSharedFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block="GraniteMoeSharedDecoderLayer",
    hf_modules=("granitemoeshared", "granitemoe_swa"),
    select_state=select_state,
    note="Granite-MoE's block plus the decoder layer's shared_mlp (shared_intermediate_size, gated) as one shared expert; the HF block imported is the decoder layer",
)
