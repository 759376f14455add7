"""The dense MLP (`type: mlp`), also used for the shared experts of an MoE layer."""

import torch
from torch import nn

from fastmoe_cfg.layers.activations import hidden_activation
from fastmoe_cfg.layers.linear import Linear, linear_lr_scales
from fastmoe_cfg.layers.lr import scale_of
from fastmoe_cfg.layers.noise import dropout
from fastmoe_cfg.layers.normalization import build_normalization, normalization_lr_scales
from fastmoe_cfg.layers.recompute import checkpointed, recomputed_steps
from fastmoe_cfg.layers.tokens import as_tokens
from fastmoe_cfg.schemas.mlp import MLPBaseConfig


class MLP(nn.Module):
    """post_norm(layer_2(activation(layer_1(pre_norm(x))))), with activation(gate) · up when gated; then dropout in training.

    Parameters: `layer_1.weight` [I or 2·I, H] (gate rows first), `layer_1.bias`,
    `layer_2.weight` [H, I], `layer_2.bias`, `pre_norm.*`, `post_norm.*`.
    Default initialization: layer_1 normal(std=H^-0.5), layer_2 normal(std=I^-0.5), biases 0.
    """

    def __init__(
        self,
        config: MLPBaseConfig,
        hidden_size: int,
        *,
        intermediate_size: int | None = None,
        norms: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size or config.intermediate_size
        self.activation = config.activation
        self.gated = config.gated
        self.activation_limit = config.activation_limit
        self.recompute_level = config.recompute_level
        self.dropout = config.dropout  # applied by forward(); the shared experts of an MoE layer run inputs() and outputs() only
        self.pre_norm = build_normalization(config.pre_norm if norms else None, hidden_size, device=device, dtype=dtype)
        bias_1, bias_2 = config.has_bias(config.layer_1), config.has_bias(config.layer_2)
        rows_1 = self.intermediate_size * (2 if self.gated else 1)
        self.layer_1 = Linear(config.layer_1, hidden_size, rows_1, bias=bias_1, default_std=hidden_size**-0.5, device=device, dtype=dtype)
        self.layer_2 = Linear(
            config.layer_2, self.intermediate_size, hidden_size, bias=bias_2, default_std=self.intermediate_size**-0.5, device=device, dtype=dtype
        )
        self.post_norm = build_normalization(config.post_norm if norms else None, hidden_size, device=device, dtype=dtype)
        scale = scale_of(config.lr_scale)
        self.lr_scales = {
            **linear_lr_scales(config.layer_1, "layer_1", scale, bias=bias_1),
            **linear_lr_scales(config.layer_2, "layer_2", scale, bias=bias_2),
            **(normalization_lr_scales(config.pre_norm, "pre_norm", scale) if norms else {}),
            **(normalization_lr_scales(config.post_norm, "post_norm", scale) if norms else {}),
        }

    def reset_parameters(self) -> None:
        """Initialise every parameter as the constructor does, in the same order (after a build on the meta device)."""
        for child in self.children():
            child.reset_parameters()

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [tokens, H] or [batch, seq, H]; token_mask: bool, x.shape[:-1], True for a real token. Returns x's shape."""
        tokens = as_tokens(x, token_mask, self.hidden_size)
        full, _, _ = recomputed_steps(self.recompute_level)
        return tokens.restore(checkpointed(self._forward, tokens.x_TH, tokens.mask_T, recompute=full))

    def _forward(self, x_TH: torch.Tensor, mask_T: torch.Tensor | None) -> torch.Tensor:
        _, inputs, outputs = recomputed_steps(self.recompute_level)
        h_TI = checkpointed(self.inputs, x_TH, recompute=inputs)
        y_TH = checkpointed(self.outputs, h_TI, recompute=outputs)
        if self.post_norm is not None:
            y_TH = self.post_norm(y_TH)
        return dropout(y_TH, self.dropout, mask_T) if self.training and self.dropout else y_TH

    def inputs(self, x_TH: torch.Tensor) -> torch.Tensor:
        """pre_norm and layer_1: [T, H] -> [T, I or 2I]."""
        return self.layer_1(x_TH if self.pre_norm is None else self.pre_norm(x_TH))

    def outputs(self, h_TI: torch.Tensor) -> torch.Tensor:
        """Activation and layer_2 (no post_norm): [T, I or 2I] -> [T, H]."""
        return self.layer_2(hidden_activation(h_TI, self.activation, gated=self.gated, limit=self.activation_limit))
