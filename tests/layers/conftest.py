from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the layer tests need torch (pip install torch==2.13.0)")

from fastmoe_cfg.schemas import MLPBaseConfig  # noqa: E402


def build(data: dict, hidden_size: int = 8, *, dtype=torch.float64, seed: int = 0, randomize: bool = True):
    """Build the layer of a config dict; with `randomize`, every parameter is redrawn N(0, 0.5²) (norm weights too)."""
    config = MLPBaseConfig.from_dict(data)
    torch.manual_seed(seed)
    layer = config.build(hidden_size, dtype=dtype)
    if randomize:
        with torch.no_grad():
            for parameter in layer.parameters():
                parameter.normal_(0, 0.5)
    return layer


def forward_backward(layer, x, grad=None, **kwargs):
    """Output, input gradient and parameter gradients (by name) of sum(output · grad)."""
    x = x.detach().clone().requires_grad_()
    layer.zero_grad(set_to_none=True)
    out = layer(x, **kwargs)
    grad = torch.ones_like(out) if grad is None else grad
    (out * grad).sum().backward()
    grads = {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in layer.named_parameters()}
    return out.detach(), x.grad, grads
