"""Nemotron-H (NVIDIA Nemotron 3, `NemotronHMoE`): a hybrid whose blocks each hold one mixer, named by
layers_block_type (or the legacy hybrid_override_pattern: M Mamba-2, * attention, E MoE, - MLP). Only the "moe" and
"mlp" blocks have an MLP: our decoder layer i is the i-th of them, in order (the Mamba-2 and attention blocks between
them are token mixers, outside the MLP), so Nemotron-3-Nano's 52 blocks are 23 MoE layers here.

The MoE block is DeepSeek-V3's routing (sigmoid of a float32 router, group-limited top-k of scores +
e_score_correction_bias, renormalised with norm_topk_prob (+1e-20) × routed_scaling_factor) over ungated experts
(up_proj only) with mlp_hidden_act, relu2 (squared ReLU) by default, and one ungated shared MLP of
moe_shared_expert_intermediate_size with the same activation. An "mlp" block is one ungated MLP of intermediate_size.

Refused: moe_latent_size (the routed experts then run in a projected space, fc1_latent_proj / fc2_latent_proj: ours map
hidden to hidden), mlp_bias on MoE layers (biases on the shared expert, none on the routed ones), and n_shared_experts
other than 1 (transformers always builds one shared MLP).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import groups
from fastmoe_cfg.hf.fields import ACTIVATIONS, MAX_LAYERS, HFFields, Number, describe, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion
from fastmoe_cfg.hf.weights import Tensors

BLOCK = "NemotronHMoE"
LEGACY = {"mamba": "linear_attention", "attention": "full_attention"}  # transformers' remap_legacy_layer_types
PATTERN = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}
DEFAULT_BLOCKS = ("linear_attention", "moe", "full_attention", "mlp")  # NemotronHConfig's default layers_block_type
MLP_BLOCKS = ("moe", "mlp")


def _activation(value: str) -> str:
    """HF's mlp_hidden_act -> ours: relu2 is squared ReLU, the others as every family reads them."""
    if value == "relu2":
        return "squared_relu"
    if value not in ACTIVATIONS:
        raise PydanticCustomError(
            "hf_activation", "activation {name} has no equivalent here (supported: {supported})",
            {"name": describe(value), "supported": ", ".join(["relu2", *ACTIVATIONS])},
        )
    return ACTIVATIONS[value]


BlockType = Literal["linear_attention", "full_attention", "moe", "mlp", "mamba", "attention"]


class NemotronHFields(HFFields):
    # transformers derives the block count from the list (a num_hidden_layers that disagrees is ignored, with a warning;
    # its to_dict() writes none): ours is the number of blocks with an MLP, set below
    num_hidden_layers: int | None = hf_field(None, ge=1, le=MAX_LAYERS)
    layers_block_type: list[BlockType] | None = hf_field(None, names=("layers_block_type", "layer_types"), max_length=MAX_LAYERS)
    hybrid_override_pattern: str | None = hf_field(None, pattern=r"^[ME*\-]+$", max_length=MAX_LAYERS)
    n_routed_experts: int = hf_field(names=("n_routed_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    moe_shared_expert_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the "mlp" blocks' width
    mlp_hidden_act: Annotated[str, AfterValidator(_activation)] = "relu2"  # absent fields: NemotronHConfig's defaults
    mlp_bias: bool = False
    n_shared_experts: int = hf_field(1, ge=0)
    moe_latent_size: int | None = hf_field(None, ge=1)
    routed_scaling_factor: Number = hf_field(1.0, gt=0)
    n_group: int = hf_field(1, ge=1)
    topk_group: int = hf_field(1, ge=1)
    norm_topk_prob: bool = True
    _blocks_in_file: int | None = PrivateAttr(None)  # the config.json's num_hidden_layers (transformers' block count)

    @model_validator(mode="after")
    def _mlp_layers(self) -> NemotronHFields:
        """num_hidden_layers: the blocks with an MLP (what our decoder layers are); the file's value is kept apart."""
        count = sum(kind in MLP_BLOCKS for kind in self.blocks())
        if count == 0:
            raise PydanticCustomError("nemotron_h_no_mlp", "the model has no block with an MLP (no \"moe\" or \"mlp\" in layers_block_type)")
        self._blocks_in_file = self.num_hidden_layers
        object.__setattr__(self, "num_hidden_layers", count)  # a frozen model: set once, here
        return self

    def blocks(self) -> tuple[str, ...]:
        """Every block's mixer, as transformers builds them: the list wins over the legacy pattern."""
        if self.layers_block_type is not None:
            return tuple(LEGACY.get(kind, kind) for kind in self.layers_block_type)
        if self.hybrid_override_pattern is not None:
            return tuple(PATTERN[char] for char in self.hybrid_override_pattern)
        return DEFAULT_BLOCKS

    def mlp_blocks(self) -> tuple[int, ...]:
        """The HF block index of each of our decoder layers."""
        return tuple(index for index, kind in enumerate(self.blocks()) if kind in MLP_BLOCKS)

    def blocks_in_file(self) -> int | None:
        return self._blocks_in_file


def moe_layers(hf: NemotronHFields) -> tuple[int, ...]:
    blocks = hf.blocks()
    return tuple(layer for layer, index in enumerate(hf.mlp_blocks()) if blocks[index] == "moe")


def check(hf: NemotronHFields, context: Context) -> None:
    blocks, given = len(hf.blocks()), hf.blocks_in_file()
    if given is not None and given != blocks and (hf.layers_block_type is not None or hf.hybrid_override_pattern is not None):
        name = "layers_block_type" if hf.layers_block_type is not None else "hybrid_override_pattern"
        context.problem(
            "num_hidden_layers",
            f"{given} disagrees with the {blocks} blocks of {name}: transformers builds those (its num_hidden_layers is "
            "their count); which one describes the model is unclear",
        )


def convert(out: Conversion, hf: NemotronHFields, context: Context) -> None:
    check(hf, context)
    block = hf.mlp_blocks()[out.layer]
    if not out.is_moe:
        if hf.intermediate_size is None:
            context.problem("intermediate_size", f"missing: expected an integer (the width of the MLP of block {block})")
            return
        out.set("type", "mlp", f"block {block} of layers_block_type is an MLP (NemotronHMLP)")
        ungated(out, hf, context, hf.intermediate_size, "intermediate_size")
        out.set("add_linear_biases", hf.mlp_bias, context.named("mlp_bias"))
        return
    context.unsupported_unless(
        "moe_latent_size", lambda value: False,
        f"{BLOCK} then projects its input to moe_latent_size (fc1_latent_proj), runs the routed experts there and projects "
        "back (fc2_latent_proj): our experts map hidden_size to hidden_size",
    )
    context.unsupported_unless(
        "mlp_bias", lambda value: value is False,
        "it gives the shared expert (NemotronHMLP) biases and the routed experts (NemotronHExperts) none: our shared experts "
        "have the routed experts' biases",
    )
    context.unsupported_unless(
        "n_shared_experts", lambda value: value == 1,
        f"transformers' {BLOCK} ignores it and always adds one shared MLP of moe_shared_expert_intermediate_size",
    )
    out.set("type", "moe", f"block {block} of layers_block_type is an MoE block ({BLOCK})")
    out.set("experts", hf.n_routed_experts + 1, "n_routed_experts + the shared expert")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    out.set("shared_experts", 1, "shared_experts: one ungated MLP (NemotronHMLP) on every token, weight 1")
    out.set("shared_expert_intermediate_size", hf.moe_shared_expert_intermediate_size, "moe_shared_expert_intermediate_size")
    ungated(out, hf, context, hf.moe_intermediate_size, "moe_intermediate_size")
    out.set("add_linear_biases", False, "no biases in the experts")
    out.set("routing", "aux_free", "NemotronHTopkRouter: e_score_correction_bias serves the choice only")
    out.set("router_score_function", "sigmoid", "NemotronHTopkRouter: sigmoid of the router logits")
    out.set("normalize_expert_weights", hf.norm_topk_prob, context.named("norm_topk_prob"))
    out.set("routed_scaling_factor", hf.routed_scaling_factor, context.named("routed_scaling_factor"))
    groups(out, hf, context)
    out.set("router_dtype", "float32", "NemotronHTopkRouter computes the router logits in float32 (a float32 weight)")


def ungated(out: Conversion, hf: NemotronHFields, context: Context, width: int, width_field: str) -> None:
    out.set("intermediate_size", width, width_field)
    out.set("gated", False, "up_proj only: down_proj(act(up_proj(x)))")
    out.set("activation", hf.mlp_hidden_act, context.named("mlp_hidden_act"))


def tensors(config) -> list[Tensors]:
    return [
        Tensors(("gate.weight",), "router.weight"),
        Tensors(("gate.e_score_correction_bias",), "router_correction_bias"),
        Tensors(("experts.up_proj",), "experts.layer_1.weight"),
        Tensors(("experts.down_proj",), "experts.layer_2.weight"),
        Tensors(("shared_experts.up_proj.weight",), "shared.layer_1.weight"),
        Tensors(("shared_experts.down_proj.weight",), "shared.layer_2.weight"),
    ]


FAMILY = Family(
    model_types=("nemotron_h",),
    fields=NemotronHFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("nemotron_h",),
    note=(
        "our decoder layers are the blocks with an MLP (\"moe\", \"mlp\" in layers_block_type / hybrid_override_pattern); "
        "DeepSeek-V3's routing (sigmoid, float32, top-k on scores + e_score_correction_bias, groups, norm_topk_prob × "
        "routed_scaling_factor) over ungated relu2 experts and one ungated shared MLP; moe_latent_size refused (latent experts)"
    ),
)
