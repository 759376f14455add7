"""Activation functions of the MLP hidden layer, and the gated linear unit."""

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fastmoe_cfg.schemas.enums import ActivationType
from fastmoe_cfg.schemas.mlp import GPT_OSS_ALPHA


def _squared_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x).square()


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


ACTIVATIONS: dict[ActivationType, Callable[[torch.Tensor], torch.Tensor]] = {
    ActivationType.gelu: _gelu_tanh,
    ActivationType.gelu_exact: F.gelu,
    ActivationType.silu: F.silu,
    ActivationType.relu: torch.relu,
    ActivationType.squared_relu: _squared_relu,
    ActivationType.identity: _identity,
    ActivationType.sigmoid: torch.sigmoid,
}


def gpt_oss_glu(gate_NI: torch.Tensor, up_NI: torch.Tensor, limit: float) -> torch.Tensor:
    """GPT-OSS's clamped GLU: (clamp(up, ±limit) + 1) · g · sigmoid(1.702 · g), g = min(gate, limit)."""
    gate_NI = gate_NI.clamp(max=limit)
    return (up_NI.clamp(-limit, limit) + 1) * gate_NI * torch.sigmoid(GPT_OSS_ALPHA * gate_NI)


def hidden_activation(h_NI: torch.Tensor, activation: ActivationType, *, gated: bool, limit: float | None = None) -> torch.Tensor:
    """The MLP hidden layer from layer_1's output.

    Args:
        h_NI: layer_1's output, [N, I] or, when gated, [N, 2·I] with the gate in the first I columns.
        activation: the activation function.
        gated: GLU: activation(gate) · up.
        limit: gpt_oss_glu's clamp (`activation_limit`).

    Returns:
        [N, I], the input of layer_2.
    """
    if activation == ActivationType.gpt_oss_glu:
        return gpt_oss_glu(*h_NI.chunk(2, dim=-1), limit)
    function = ACTIVATIONS[activation]
    if not gated:
        return function(h_NI)
    gate_NI, up_NI = h_NI.chunk(2, dim=-1)
    return function(gate_NI) * up_NI
