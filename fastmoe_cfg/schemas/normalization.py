"""Normalization layers: `type: layer_norm` (default), `rms_norm`, `fixed_rms_norm` or `none`."""

from typing import ClassVar, Literal

from fastmoe_cfg.config.base import Config, DescribedEnum, Rule, field, format_value
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig, ParameterConfig


TYPE_DESCRIPTION = "The normalization: layer_norm (default), rms_norm, fixed_rms_norm (RMS without weight) or none."
LR_SCALE_DESCRIPTION = (
    "Multiplies the learning rate of the normalization's parameters, on top of the scales of the layers that contain it "
    "and of each parameter's own (Fast-LLM's normalization lr_scale). None: 1."
)


class NormalizationImplementation(DescribedEnum):
    """How a normalization is computed (Fast-LLM's `implementation`); only the torch one exists here."""

    auto = "auto", "The torch implementation (the only one in fastmoe_cfg)."
    torch = "torch", "The torch implementation: statistics in float32 at least."
    fused = "fused", "Fast-LLM's Apex fused kernel: not available in fastmoe_cfg (refused)."
    fast = "fast", "Fast-LLM's Apex fast layer norm: not available in fastmoe_cfg (refused)."
    triton = "triton", "Fast-LLM's Triton kernel: not available in fastmoe_cfg (refused)."


AVAILABLE_IMPLEMENTATIONS = (NormalizationImplementation.auto, NormalizationImplementation.torch)


def _no_parameters(variant: str) -> Rule:
    """A rule: lr_scale has no effect on a normalization without parameters."""
    return Rule(
        fields=("lr_scale",),
        check=lambda lr_scale: lr_scale is None,
        message=lambda lr_scale: f"has no effect: {variant} has no parameters to scale (remove it)",
        doc=f"lr_scale has no effect on {variant}, which has no parameters.",
    )


class NormalizationConfig(Config):
    """A normalization layer over the hidden dimension."""

    __default_variant__: ClassVar[str] = "layer_norm"

    type: str | None = field(None, tier="core", desc=TYPE_DESCRIPTION)
    lr_scale: float | None = field(None, tier="feature", ge=0, desc=LR_SCALE_DESCRIPTION)


@NormalizationConfig.register("none")
class NoNormalizationConfig(NormalizationConfig):
    """No normalization: the input passes through unchanged."""

    __rules__ = (_no_parameters("type: none"),)

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
        Rule(
            fields=("implementation",),
            check=lambda implementation: implementation in AVAILABLE_IMPLEMENTATIONS,
            message=lambda implementation: (
                f"{format_value(implementation)} is Fast-LLM's, not available in fastmoe_cfg, which computes normalizations "
                "with torch only (use auto or torch)"
            ),
            doc="implementation is auto or torch: Fast-LLM's fused, fast and triton kernels are not available here.",
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
    implementation: NormalizationImplementation = field(
        NormalizationImplementation.auto, tier="performance",
        desc="How the normalization is computed (Fast-LLM's implementation): auto and torch are the torch code; Fast-LLM's fused, fast and triton kernels are refused.",
    )


@NormalizationConfig.register("layer_norm")
class LayerNormalizationConfig(AffineNormalizationConfig):
    """Layer normalization: (x - mean(x)) / sqrt(var(x) + epsilon) · weight + bias."""

    type: Literal["layer_norm"] = field("layer_norm", tier="core", desc=TYPE_DESCRIPTION)

    bias: ParameterConfig = field(default_factory=ParameterConfig, tier="architecture", desc="The per-feature bias (default initialization: zeros).")


@NormalizationConfig.register("rms_norm")
class RMSNormalizationConfig(AffineNormalizationConfig):
    """RMS normalization: x / sqrt(mean(x²) + epsilon) · weight."""

    __rules__ = (
        Rule(
            fields=("lr_scale", "weight"),
            check=lambda lr_scale, weight: lr_scale is None or weight.enabled is not False,
            message=lambda lr_scale, weight: "has no effect: this rms_norm has no weight (weight.enabled is false) and so no parameters (remove it)",
            doc="lr_scale has no effect on an rms_norm without weight.",
        ),
    )

    type: Literal["rms_norm"] = field("rms_norm", tier="core", desc=TYPE_DESCRIPTION)


@NormalizationConfig.register("fixed_rms_norm")
class FixedRMSNormalizationConfig(NormalizationConfig):
    """RMS normalization without a weight: x / sqrt(mean(x²) + epsilon) (Fast-LLM's fixed_rms_norm, Gemma-4's router norm); the same as rms_norm with weight.enabled false."""

    __rules__ = (_no_parameters("fixed_rms_norm"),)

    type: Literal["fixed_rms_norm"] = field("fixed_rms_norm", tier="core", desc=TYPE_DESCRIPTION)

    epsilon: float = field(1e-5, tier="architecture", gt=0, desc="Added to the mean square before the square root.")
