"""Linear layers: one weight matrix, or one per expert (`Linear(..., experts=E)`)."""

import torch
from torch import nn

from fastmoe_cfg.layers.initialization import fill, initialize_, normal
from fastmoe_cfg.layers.lr import scale_of
from fastmoe_cfg.schemas.linear import AffineLinearConfig, LinearConfig
from fastmoe_cfg.schemas.parameter import ParameterConfig


class Linear(nn.Module):
    """y = x · Wᵀ (+ b). `weight` is [out, in] (`experts` > 0: [experts, out, in], one matrix per expert).

    The bias follows `config.bias`, or `bias_config` for a bias declared apart (the router's).
    """

    def __init__(
        self,
        config: LinearConfig,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        default_std: float,
        experts: int = 0,
        bias_config: ParameterConfig | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        leading = (experts,) if experts else ()
        self.weight = nn.Parameter(torch.empty(*leading, out_features, in_features, device=device, dtype=dtype))
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(*leading, out_features, device=device, dtype=dtype))
        self._weight_init = config.weight.initialization, normal(default_std)
        self._bias_init = (bias_config or config.bias).initialization if bias else None, fill(0.0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weight, then the bias, from their initialization configs (or the owner's defaults)."""
        initialize_(self.weight, *self._weight_init)
        if self.bias is not None:
            initialize_(self.bias, *self._bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


def linear_lr_scales(
    config: LinearConfig, prefix: str, scale: float, *, bias: bool, bias_config: ParameterConfig | None = None
) -> dict[str, float]:
    """Learning-rate scales of a linear's parameters: MLP scale × linear scale × parameter scale."""
    layer_scale = scale * scale_of(config.lr_scale)
    scales = {f"{prefix}.weight": layer_scale * scale_of(config.weight.lr_scale)}
    if bias_config is None and isinstance(config, AffineLinearConfig):
        bias_config = config.bias
    if bias and bias_config is not None:
        scales[f"{prefix}.bias"] = layer_scale * scale_of(bias_config.lr_scale)
    return scales
