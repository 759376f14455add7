"""A learnable parameter: its initialization and learning-rate scale."""

from fastmoe_cfg.config.base import Config, field
from fastmoe_cfg.schemas.initialization import InitializationConfig


class ParameterConfig(Config):
    """A learnable parameter of a layer."""

    initialization: InitializationConfig | None = field(
        None, tier="feature", desc="How the parameter is initialized. None: the owner's default (e.g. normal with std hidden_size^-0.5 for the router)."
    )
    lr_scale: float | None = field(
        None, tier="feature", ge=0, desc="Multiplies the learning rate of this parameter, on top of the scales of the layers that contain it. None: 1."
    )


class OptionalParameterConfig(ParameterConfig):
    """A parameter that can be switched off (a bias, an optional scale)."""

    enabled: bool | None = field(
        None, tier="architecture", desc="Whether the parameter exists. None: the owner's default (a linear's bias follows add_linear_biases; a norm's weight is on; router scales are off)."
    )
