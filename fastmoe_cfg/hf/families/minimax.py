"""MiniMax-Text-01 (`MiniMaxSparseMoeBlock`): Mixtral's block (softmax top-k in float32, renormalised, input jitter in
training) in every decoder layer, lightning or full attention alike.

The decoder layer adds `residual · mlp_alpha_factor + block(x) · mlp_beta_factor`: the residual's factor is outside
the MLP; a mlp_beta_factor other than 1 would scale the block's output, which this config does not describe, and
is refused. MiniMax's own code has an optional shared expert (shared_intermediate_size), which transformers' block
does not build: refused unless 0.
"""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.mixtral import MixtralFields, router_and_experts
from fastmoe_cfg.hf.families.mixtral import convert as mixtral_convert
from fastmoe_cfg.hf.fields import Number
from fastmoe_cfg.hf.mapping import Context, Conversion, every_layer


class MiniMaxFields(MixtralFields):
    mlp_beta_factor: Number = 1.0
    shared_intermediate_size: int | None = None  # MiniMax's own config.json; not read by transformers


def no_shared_expert(context: Context, block: str) -> None:
    context.unsupported_unless(
        "shared_intermediate_size", lambda value: value == 0,
        f"transformers' {block} has no shared expert (MiniMax's own code adds one when it is > 0)",
    )


def convert(out: Conversion, hf: MiniMaxFields, context: Context) -> None:
    context.unsupported_unless(
        "mlp_beta_factor", lambda value: value == 1,
        "MiniMaxDecoderLayer multiplies the MoE block's output by it, outside the block that this config describes",
    )
    no_shared_expert(context, "MiniMaxSparseMoeBlock")
    mixtral_convert(out, hf, context, block="MiniMaxSparseMoeBlock")


FAMILY = Family(
    model_types=("minimax",),
    fields=MiniMaxFields,
    moe_layers=every_layer,
    convert=convert,
    tensors=router_and_experts,
    block="MiniMaxSparseMoeBlock",
    hf_modules=("minimax",),
    note="Mixtral's block (softmax top-k, renormalised; router_jitter_noise on the block input in training) in every decoder layer; mlp_beta_factor other than 1 is refused",
)
