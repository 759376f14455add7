"""A learnable parameter: its initialization and learning-rate scale."""

from fastmoe_cfg.config.base import Config, Rule, field
from fastmoe_cfg.schemas.initialization import InitializationConfig


class ParameterConfig(Config):
    """A learnable parameter of a layer."""

    __rules__ = (
        Rule(
            fields=("weight_decay",),
            check=lambda weight_decay: weight_decay is None,
            message=lambda weight_decay: (
                "Fast-LLM's per-parameter weight decay is not supported: fastmoe_cfg layers give the optimizer learning-rate "
                "scales only (parameter_groups); set weight decay in your optimizer's parameter groups (remove it, or set it to null)"
            ),
            doc="weight_decay is refused (null only): set weight decay in the optimizer.",
        ),
    )

    initialization: InitializationConfig | None = field(
        None, tier="feature", desc="How the parameter is initialized. None: the owner's default (e.g. normal with std hidden_size^-0.5 for the router)."
    )
    lr_scale: float | None = field(
        None, tier="feature", ge=0, desc="Multiplies the learning rate of this parameter, on top of the scales of the layers that contain it. None: 1."
    )
    weight_decay: float | bool | None = field(
        None, tier="feature", desc="Fast-LLM's per-parameter weight decay override. Refused: fastmoe_cfg sets no optimizer option but learning-rate scales; only null is accepted, so Fast-LLM files that write null validate."
    )


class OptionalParameterConfig(ParameterConfig):
    """A parameter that can be switched off (a bias, an optional scale)."""

    enabled: bool | None = field(
        None, tier="architecture", desc="Whether the parameter exists. None: the owner's default (a linear's bias follows add_linear_biases; a norm's weight is on; router scales are off)."
    )
