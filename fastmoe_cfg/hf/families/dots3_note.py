"""dots3 note (rednote, `Dots3NoteTextMoE`): DeepSeek-V3's MoE block (sigmoid, group-limited top-k on scores +
e_score_correction_bias, renormalised × routed_scaling_factor) whose shared MLP is
shared_experts_intermediate_size × n_shared_experts wide (the legacy key moe_shared_expert_intermediate_size wins, as
transformers reads it). MoE layers where mlp_layer_types is "sparse"; without it, as transformers derives it from the
legacy first_k_dense_replace (default 1) and moe_layer_freq (an integer, or a list whose nonzero entries are MoE).

The multimodal `dots3_note` holds the text model under `text_config`, or, as the published checkpoints do, at its top
level. Its vision tower's own MoE (`Dots3NoteVisionMoE`) is not the text model's MLP and is not converted.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.axk1 import AXK1Fields, legacy_converter, legacy_moe_layers
from fastmoe_cfg.hf.families.deepseek_v3 import tensors
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "Dots3NoteTextMoE"


class Dots3NoteTextFields(AXK1Fields):
    moe_layer_freq: Annotated[int, Field(ge=1)] | list[int] = 1  # legacy: transformers reads it without mlp_layer_types
    n_group: int = hf_field(1, ge=1)  # Dots3NoteTextConfig's defaults
    topk_group: int = hf_field(1, ge=1)
    routed_scaling_factor: Number = 1.0
    shared_experts_intermediate_size: int = hf_field(1536, names=("shared_experts_intermediate_size", "moe_shared_expert_intermediate_size"), ge=1)
    mlp_bias: bool = False


def shared_width(out: Conversion, hf: Dots3NoteTextFields, context: Context) -> None:
    context.unsupported_unless(
        "mlp_bias", lambda value: value is False,
        f"transformers' {BLOCK} and dense MLP have no biases whatever mlp_bias says: whether the checkpoint has biases is unclear",
    )
    width = hf.shared_experts_intermediate_size * hf.n_shared_experts
    source = f"{context.named('shared_experts_intermediate_size')} × n_shared_experts: one shared MLP"
    out.set("shared_experts", hf.n_shared_experts, source)
    if width != hf.moe_intermediate_size * hf.n_shared_experts:
        out.set("shared_expert_intermediate_size", width, source)


FAMILY = Family(
    model_types=("dots3_note_text", "dots3_note"),
    fields=Dots3NoteTextFields,
    moe_layers=legacy_moe_layers,
    convert=legacy_converter(BLOCK, "dots3 note", shared_width),
    tensors=tensors,
    block=BLOCK,
    wrappers={"dots3_note": "text_config"},
    hf_modules=("dots3_note",),
    note=(
        "DeepSeek-V3's block with a shared MLP of shared_experts_intermediate_size × n_shared_experts; text_config of "
        "dots3_note, or its top level as published; MoE layers from mlp_layer_types or the legacy first_k_dense_replace / "
        "moe_layer_freq (a list too); the vision tower's MoE not converted"
    ),
)
