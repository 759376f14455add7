"""Mellum 2 (JetBrains, `MellumSparseMoeBlock`): Qwen3-MoE's block (softmax top-k of the router logits, renormalised
with norm_topk_prob, true by default; router linear in the model dtype). The MoE layers are those whose
mlp_layer_types entry is "sparse" (default: every layer); the others have a dense MLP of intermediate_size."""

from __future__ import annotations

from typing import Literal

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import check_layer_types
from fastmoe_cfg.hf.families.mixtral import router_and_experts
from fastmoe_cfg.hf.families.qwen3_moe import dense_layer, routed
from fastmoe_cfg.hf.fields import Activation, HFFields, Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "MellumSparseMoeBlock"


class MellumFields(HFFields):
    num_experts: int = hf_field(names=("num_experts", "num_local_experts"), ge=1)
    num_experts_per_tok: int = hf_field(ge=1)
    moe_intermediate_size: int = hf_field(ge=1)
    intermediate_size: int | None = hf_field(None, ge=1)  # the dense layers' width
    mlp_layer_types: list[Literal["dense", "sparse"]] | None = None
    hidden_act: Activation = "silu"
    norm_topk_prob: bool = True  # MellumConfig's defaults
    router_aux_loss_coef: Number = hf_field(0.001, ge=0)
    output_router_logits: bool = False


def moe_layers(hf: MellumFields) -> tuple[int, ...]:
    if hf.mlp_layer_types is None:
        return tuple(range(hf.num_hidden_layers))
    return tuple(index for index, kind in enumerate(hf.mlp_layer_types[: hf.num_hidden_layers]) if kind == "sparse")


def convert(out: Conversion, hf: MellumFields, context: Context) -> None:
    check_layer_types(hf, context)
    if not out.is_moe:
        return dense_layer(out, hf, context)
    out.set("type", "moe", f'{BLOCK}: mlp_layer_types[layer] is "sparse" (default: every layer)')
    out.set("experts", hf.num_experts, "num_experts")
    out.set("experts_per_token", hf.num_experts_per_tok, "num_experts_per_tok")
    routed(out, hf, context)


FAMILY = Family(
    model_types=("mellum",),
    fields=MellumFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=router_and_experts,
    block=BLOCK,
    hf_modules=("mellum",),
    note="Qwen3-MoE's block: softmax top-k, renormalised with norm_topk_prob (true by default); MoE layers where mlp_layer_types is sparse (default: all)",
)
