"""Hunyuan-MoE v1 (`HunYuanMoEV1Moe`): a float32 router (`gate.wg`, the input upcast), softmax top-k renormalised,
num_experts routed experts and one shared MLP (`shared_mlp`, weight 1), all intermediate_size wide; every decoder
layer. moe_topk may be a list: k of each layer.

Tencent's config.json also carries the per-layer settings of its own code, which transformers' block does not read
(moe_intermediate_size, num_shared_expert, use_mixed_mlp_moe, moe_layer_num_skipped): refused unless they describe
the block transformers builds.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.fields import Activation, HFFields, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion, every_layer, gated_experts, routed_softmax
from fastmoe_cfg.hf.weights import Tensors, fused_experts, gated_mlp


class HunYuanMoeV1Fields(HFFields):
    num_experts: int = hf_field(names=("num_experts", "num_local_experts"), ge=1)
    moe_topk: int | list[int] = hf_field(names=("moe_topk", "num_experts_per_tok"))
    intermediate_size: int = hf_field(ge=1)
    hidden_act: Activation = "silu"
    output_router_logits: bool = False
    # Tencent's own config.json; transformers' block does not read them.
    moe_intermediate_size: int | list[int] | None = None
    num_shared_expert: int | list[int] | None = None
    use_mixed_mlp_moe: bool | None = None
    moe_layer_num_skipped: int | None = None


BLOCK = "HunYuanMoEV1Moe"


def _each(value) -> list:
    return value if isinstance(value, list) else [value]


def layer_k(out: Conversion, hf: HunYuanMoeV1Fields, context: Context) -> int | None:
    """k of decoder `out.layer`: moe_topk, or its entry for the layer (HunYuanMoEV1Gate)."""
    if isinstance(hf.moe_topk, list) and len(hf.moe_topk) != hf.num_hidden_layers:
        context.problem("moe_topk", f"has {len(hf.moe_topk)} entries: expected one per decoder layer ({hf.num_hidden_layers}, num_hidden_layers)")
        return None
    k = hf.moe_topk[out.layer] if isinstance(hf.moe_topk, list) else hf.moe_topk
    if k < 1:
        context.problem("moe_topk", f"decoder layer {out.layer}'s k is {k}: expected an integer >= 1")
        return None
    return k


def convert(out: Conversion, hf: HunYuanMoeV1Fields, context: Context) -> None:
    width = hf.intermediate_size
    context.unsupported_unless(
        "moe_intermediate_size", lambda value: all(entry == width for entry in _each(value)),
        f"transformers' HunYuanMoEV1Experts are intermediate_size ({width}) wide in every layer, Tencent's code moe_intermediate_size",
    )
    context.unsupported_unless(
        "num_shared_expert", lambda value: all(entry == 1 for entry in _each(value)),
        f"transformers' {BLOCK} has one shared MLP of intermediate_size in every layer",
    )
    context.unsupported_unless("use_mixed_mlp_moe", lambda value: value is True, f"transformers' {BLOCK} always adds its shared MLP")
    context.unsupported_unless("moe_layer_num_skipped", lambda value: value == 0, "transformers' model has an MoE block in every decoder layer")
    k = layer_k(out, hf, context)
    if k is None:
        return
    out.set("type", "moe", f"{BLOCK} in every decoder layer")
    out.set("experts", hf.num_experts + 1, "num_experts + the shared MLP")
    out.set("experts_per_token", k, "moe_topk" if isinstance(hf.moe_topk, int) else f"moe_topk[{out.layer}]")
    out.set("shared_experts", 1, "shared_mlp: one MLP of intermediate_size on every token, weight 1")
    gated_experts(out, width, "intermediate_size (routed experts and shared MLP alike)", hf.hidden_act, context.named("hidden_act"))
    routed_softmax(out, normalize=True, normalize_source="HunYuanMoEV1Gate renormalises the top-k weights")
    out.set("router_dtype", "float32", "HunYuanMoEV1Gate: wg is a float32 Linear and its input is upcast")
    out.set("auxiliary_loss_coefficient", 0.0, "transformers' Hunyuan-MoE v1 adds no load-balancing loss")


def tensors(config) -> list[Tensors]:
    return [Tensors(("gate.wg.weight",), "router.weight"), *fused_experts(), *gated_mlp("shared_mlp", "shared")]


FAMILY = Family(
    model_types=("hunyuan_v1_moe",),
    fields=HunYuanMoeV1Fields,
    moe_layers=every_layer,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    hf_modules=("hunyuan_v1_moe",),
    note="float32 router, softmax top-k renormalised (moe_topk: per layer when a list), one shared MLP of intermediate_size; Tencent's per-layer moe_intermediate_size / num_shared_expert must agree with the block transformers builds",
)
