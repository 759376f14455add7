"""Activation functions of the MLP hidden layer, and the gated linear unit."""

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fastmoe_cfg.schemas.enums import ActivationType


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
}


def hidden_activation(h_NI: torch.Tensor, activation: ActivationType, *, gated: bool) -> torch.Tensor:
    """The MLP hidden layer from layer_1's output.

    Args:
        h_NI: layer_1's output, [N, I] or, when gated, [N, 2·I] with the gate in the first I columns.
        activation: the activation function.
        gated: GLU: activation(gate) · up.

    Returns:
        [N, I], the input of layer_2.
    """
    function = ACTIVATIONS[activation]
    if not gated:
        return function(h_NI)
    gate_NI, up_NI = h_NI.chunk(2, dim=-1)
    return function(gate_NI) * up_NI
