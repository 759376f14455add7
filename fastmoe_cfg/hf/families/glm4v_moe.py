"""GLM-4.5V's text model (`glm4v_moe_text`, `Glm4vMoeTextMoE`), under the `text_config` of the multimodal `glm4v_moe`:
GLM-4.5's MoE block and defaults. Its `Glm4vMoeForConditionalGeneration` adds router_aux_loss_coef × a Switch-style
load-balancing loss on the softmax of the router logits when output_router_logits is set: a loss our aux_free
(sigmoid, correction-bias) routing does not have, so that setting is refused."""

from __future__ import annotations

from fastmoe_cfg.hf.families import Family
from fastmoe_cfg.hf.families.deepseek_v3 import moe_layers, tensors
from fastmoe_cfg.hf.families.glm4_moe import Glm4MoeFields, glm_converter
from fastmoe_cfg.hf.fields import Number, hf_field
from fastmoe_cfg.hf.mapping import Context, Conversion

BLOCK = "Glm4vMoeTextMoE"


class Glm4vMoeTextFields(Glm4MoeFields):
    output_router_logits: bool = False
    router_aux_loss_coef: Number = hf_field(0.0001, ge=0)  # Glm4vMoeTextConfig's default


base = glm_converter(BLOCK, "GLM-4.5V")


def convert(out: Conversion, hf: Glm4vMoeTextFields, context: Context) -> None:
    if hf.output_router_logits and hf.router_aux_loss_coef:
        context.problem(
            "output_router_logits",
            "true cannot be converted: Glm4vMoeForConditionalGeneration then adds router_aux_loss_coef × a load-balancing "
            "loss on the softmax of the router logits, which aux_free routing (sigmoid scores, correction bias) does not have; "
            "set it to false (or router_aux_loss_coef to 0)",
        )
    base(out, hf, context)


FAMILY = Family(
    model_types=("glm4v_moe_text",),
    fields=Glm4vMoeTextFields,
    moe_layers=moe_layers,
    convert=convert,
    tensors=tensors,
    block=BLOCK,
    wrappers={"glm4v_moe": "text_config"},
    hf_modules=("glm4v_moe",),
    note=(
        "GLM-4.5V's text model (text_config of glm4v_moe): GLM-4.5's block; output_router_logits with router_aux_loss_coef "
        "(HF's softmax load-balancing loss on top of aux_free routing) refused"
    ),
)
