"""Normalization layers over the hidden dimension: layer_norm, rms_norm, fixed_rms_norm, none."""

import torch
import torch.nn.functional as F
from torch import nn

from fastmoe_cfg.layers.initialization import fill, initialize_
from fastmoe_cfg.layers.lr import scale_of
from fastmoe_cfg.schemas.normalization import (
    AffineNormalizationConfig,
    FixedRMSNormalizationConfig,
    LayerNormalizationConfig,
    NoNormalizationConfig,
    NormalizationConfig,
)


class Normalization(nn.Module):
    """layer_norm: (x - mean) / sqrt(var + eps) · w + b; rms_norm: x / sqrt(mean(x²) + eps) · w (no w when disabled
    and for fixed_rms_norm).

    With `zero_centered`, the stored weight is an offset and the output is multiplied by (1 + w).
    Statistics are computed in float32 at least, then cast back to the input's dtype.
    """

    def __init__(self, config: AffineNormalizationConfig | FixedRMSNormalizationConfig, hidden_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        affine = isinstance(config, AffineNormalizationConfig)
        self.rms = not isinstance(config, LayerNormalizationConfig)
        self.epsilon = config.epsilon
        self.zero_centered = affine and config.zero_centered
        self.config = config
        self.weight = None
        if affine and config.weight.enabled is not False:
            self.weight = nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.bias = None
        if isinstance(config, LayerNormalizationConfig):
            self.bias = nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight 1 (0 when zero_centered) and bias 0, unless their initialization configs say otherwise."""
        if self.weight is not None:
            initialize_(self.weight, self.config.weight.initialization, fill(0.0 if self.zero_centered else 1.0))
        if self.bias is not None:
            initialize_(self.bias, self.config.bias.initialization, fill(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute_dtype = torch.promote_types(x.dtype, torch.float32)
        x_float = x.to(compute_dtype)
        if self.rms:
            normed = x_float * torch.rsqrt(x_float.square().mean(-1, keepdim=True) + self.epsilon)
        else:
            normed = F.layer_norm(x_float, x.shape[-1:], eps=self.epsilon)
        if self.weight is not None:
            weight = self.weight.to(compute_dtype)
            normed = normed * (1 + weight if self.zero_centered else weight)
        if self.bias is not None:
            normed = normed + self.bias.to(compute_dtype)
        return normed.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{'rms_norm' if self.rms else 'layer_norm'}, epsilon={self.epsilon}, zero_centered={self.zero_centered}"


def build_normalization(config: NormalizationConfig | None, hidden_size: int, *, device=None, dtype=None) -> nn.Module | None:
    """The module for a normalization config; None for no normalization (`None` or `type: none`)."""
    if config is None or isinstance(config, NoNormalizationConfig):
        return None
    if isinstance(config, (AffineNormalizationConfig, FixedRMSNormalizationConfig)):
        return Normalization(config, hidden_size, device=device, dtype=dtype)
    raise NotImplementedError(f"no layer implementation for normalization type {config.type!r}")


def normalization_lr_scales(config: NormalizationConfig | None, prefix: str, scale: float) -> dict[str, float]:
    """Learning-rate scales of a normalization's parameters, by parameter name: the owner's scale × the
    normalization's `lr_scale` × the parameter's."""
    if config is None or not isinstance(config, AffineNormalizationConfig):
        return {}
    scale = scale * scale_of(config.lr_scale)
    scales = {f"{prefix}.weight": scale * scale_of(config.weight.lr_scale)} if config.weight.enabled is not False else {}
    if isinstance(config, LayerNormalizationConfig):
        scales[f"{prefix}.bias"] = scale * scale_of(config.bias.lr_scale)
    return scales
