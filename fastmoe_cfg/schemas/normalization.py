"""Normalization layers: `type: layer_norm` (default), `rms_norm` or `none`."""

from typing import ClassVar, Literal

from fastmoe_cfg.config.base import Config, Rule, field
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig, ParameterConfig


TYPE_DESCRIPTION = "The normalization: layer_norm (default), rms_norm or none."


class NormalizationConfig(Config):
    """A normalization layer over the hidden dimension."""

    __default_variant__: ClassVar[str] = "layer_norm"

    type: str | None = field(None, tier="core", desc=TYPE_DESCRIPTION)


@NormalizationConfig.register("none")
class NoNormalizationConfig(NormalizationConfig):
    """No normalization: the input passes through unchanged."""

    type: Literal["none"] = field("none", tier="core", desc=TYPE_DESCRIPTION)


class AffineNormalizationConfig(NormalizationConfig):
    """A normalization with a learnable per-feature weight (base of layer_norm and rms_norm)."""

    __rules__ = (
        Rule(
            fields=("zero_centered", "weight"),
            check=lambda zero_centered, weight: not zero_centered or weight.enabled is not False,
            message=lambda zero_centered, weight: "stores the weight as an offset from 1: it needs the weight (weight.enabled is false)",
            doc="zero_centered needs the weight (weight.enabled not false).",
        ),
    )

    epsilon: float = field(1e-5, tier="architecture", gt=0, desc="Added to the variance before the square root.")
    zero_centered: bool = field(
        False, tier="architecture", desc="Store the weight as an offset from 1: the output is multiplied by (1 + weight)."
    )
    weight: OptionalParameterConfig = field(
        default_factory=OptionalParameterConfig, tier="architecture",
        desc="The per-feature weight (default initialization: ones, or zeros when zero_centered). On unless enabled is false: then the normalized input is not scaled (Gemma-4's router norm).",
    )


@NormalizationConfig.register("layer_norm")
class LayerNormalizationConfig(AffineNormalizationConfig):
    """Layer normalization: (x - mean(x)) / sqrt(var(x) + epsilon) · weight + bias."""

    type: Literal["layer_norm"] = field("layer_norm", tier="core", desc=TYPE_DESCRIPTION)

    bias: ParameterConfig = field(default_factory=ParameterConfig, tier="architecture", desc="The per-feature bias (default initialization: zeros).")


@NormalizationConfig.register("rms_norm")
class RMSNormalizationConfig(AffineNormalizationConfig):
    """RMS normalization: x / sqrt(mean(x²) + epsilon) · weight."""

    type: Literal["rms_norm"] = field("rms_norm", tier="core", desc=TYPE_DESCRIPTION)
