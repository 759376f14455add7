"""Learning-rate scales: each parameter's scale is the product of the scales down the config tree.

A layer built by fastmoe_cfg records, in `layer.lr_scales`, the product
MLP `lr_scale` × sub-layer `lr_scale` × parameter `lr_scale` for each of its
parameters (None counts as 1). `parameter_groups` turns a model that contains
such layers into optimizer parameter groups.
"""

from typing import Any

from torch import nn


def scale_of(value: float | None) -> float:
    """A config's lr_scale, None meaning 1."""
    return 1.0 if value is None else value


def parameter_groups(model: nn.Module, lr: float | None = None) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per distinct learning-rate scale.

    Parameters of fastmoe_cfg layers get the scale their config gives; every other
    parameter of `model` gets 1. Each group has `params`, `lr_scale` and, when `lr`
    is given, `lr = lr · lr_scale`, so `torch.optim.SGD(parameter_groups(model, lr=0.1))`
    works directly.
    """
    scales: dict[str, float] = {}
    for prefix, module in model.named_modules():
        if isinstance(getattr(module, "lr_scales", None), dict):
            for name, scale in module.lr_scales.items():
                scales.setdefault(f"{prefix}.{name}" if prefix else name, scale)
    groups: dict[float, list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        groups.setdefault(scales.get(name, 1.0), []).append(parameter)
    return [
        {"params": params, "lr_scale": scale, **({} if lr is None else {"lr": lr * scale})}
        for scale, params in groups.items()
    ]
