"""Linear layers: weight only (`LinearConfig`) or weight and bias (`AffineLinearConfig`)."""

from fastmoe_cfg.config.base import Config, Rule, field
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig, ParameterConfig


class LinearConfig(Config):
    """A linear layer without bias: y = x·Wᵀ."""

    weight: ParameterConfig = field(default_factory=ParameterConfig, tier="architecture", desc="The weight matrix.")
    __rules__ = (
        Rule(
            fields=("apply_peft",),
            check=lambda apply_peft: apply_peft is None,
            message=lambda apply_peft: (
                "Fast-LLM's PEFT (LoRA) switch is not supported: fastmoe_cfg has no PEFT, so this layer is always trained in full "
                "(remove it, or set it to null)"
            ),
            doc="apply_peft is refused (null only): fastmoe_cfg has no PEFT.",
        ),
    )

    lr_scale: float | None = field(None, tier="feature", ge=0, desc="Multiplies the learning rate of every parameter of this layer. None: 1.")
    apply_peft: bool | None = field(
        None, tier="feature", desc="Fast-LLM's switch to wrap this layer with PEFT (LoRA). Refused: fastmoe_cfg has no PEFT; only null is accepted, so Fast-LLM files that write null validate."
    )


class AffineLinearConfig(LinearConfig):
    """A linear layer with an optional bias: y = x·Wᵀ + b."""

    bias: OptionalParameterConfig = field(
        default_factory=OptionalParameterConfig, tier="architecture", desc="The bias vector; `enabled: null` follows the MLP's add_linear_biases."
    )
