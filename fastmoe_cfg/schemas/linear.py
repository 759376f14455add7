"""Linear layers: weight only (`LinearConfig`) or weight and bias (`AffineLinearConfig`)."""

from fastmoe_cfg.config.base import Config, field
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig, ParameterConfig


class LinearConfig(Config):
    """A linear layer without bias: y = x·Wᵀ."""

    weight: ParameterConfig = field(default_factory=ParameterConfig, tier="architecture", desc="The weight matrix.")
    lr_scale: float | None = field(None, tier="feature", ge=0, desc="Multiplies the learning rate of every parameter of this layer. None: 1.")


class AffineLinearConfig(LinearConfig):
    """A linear layer with an optional bias: y = x·Wᵀ + b."""

    bias: OptionalParameterConfig = field(
        default_factory=OptionalParameterConfig, tier="architecture", desc="The bias vector; `enabled: null` follows the MLP's add_linear_biases."
    )
