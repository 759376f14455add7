"""The hybrid dense + MoE layer (`type: hybrid_moe`), built from the dense `MLP` and the `MoEMLP`."""

from __future__ import annotations

import torch
from torch import nn

from fastmoe_cfg.layers.lr import scale_of
from fastmoe_cfg.layers.mlp import MLP
from fastmoe_cfg.layers.moe import MoEMLP
from fastmoe_cfg.layers.normalization import build_normalization, normalization_lr_scales
from fastmoe_cfg.layers.tokens import as_tokens
from fastmoe_cfg.schemas.hybrid import HybridMoEMLPConfig


class HybridMoEMLP(nn.Module):
    """An always-active dense MLP and routed experts on the same input, outputs summed (Fast-LLM's HybridMoEMLP):

        x̂ = pre_norm(x)                                   [T, H]
        out = post_norm(dense(x̂) + routed(x̂))             [T, H]

    `dense` is an `MLP` and `routed` a `MoEMLP`, each with its own pre_norm and post_norm; the router
    sees x̂ (Gemma-4: pre_norm none, so the router sees the raw input, as in Gemma4TextDecoderLayer).

    Parameters: `pre_norm.*`, `dense.*` (the MLP's), `routed.*` (the MoE layer's), `post_norm.*`.
    The learning-rate scale of each is this layer's `lr_scale` × the branch's × the parameter's.
    Default initialization: the branches' own; `reset_parameters()` draws pre_norm, dense, routed,
    post_norm in that order, as the constructor does.

    The routed branch's training interface is exposed here: `stats`, `aux_losses`, `applied_losses`,
    `aux_loss_scale`, `inject_aux_losses` and `update_bias()` read or set those of `routed`.
    """

    def __init__(self, config: HybridMoEMLPConfig, hidden_size: int, *, device=None, dtype=None, ep_mesh=None, dp_mesh=None) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size
        factory = {"device": device, "dtype": dtype}
        # Registered in the order reset_parameters() draws them.
        self.pre_norm = build_normalization(config.pre_norm, hidden_size, **factory)
        self.dense = MLP(config.dense, hidden_size, **factory)
        self.routed = MoEMLP(config.routed, hidden_size, ep_mesh=ep_mesh, dp_mesh=dp_mesh, **factory)  # experts over ep_mesh
        self.post_norm = build_normalization(config.post_norm, hidden_size, **factory)
        scale = scale_of(config.lr_scale)
        self.lr_scales = {
            **normalization_lr_scales(config.pre_norm, "pre_norm", scale),
            **{f"dense.{name}": scale * value for name, value in self.dense.lr_scales.items()},
            **{f"routed.{name}": scale * value for name, value in self.routed.lr_scales.items()},
            **normalization_lr_scales(config.post_norm, "post_norm", scale),
        }

    def reset_parameters(self) -> None:
        """Initialise every parameter and buffer as the constructor does, in the same order."""
        for child in self.children():
            child.reset_parameters()

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [tokens, H] or [batch, seq, H]; token_mask: bool, x.shape[:-1], True for a real token. Returns x's shape."""
        tokens = as_tokens(x, token_mask, self.hidden_size)
        x_TH = tokens.x_TH if self.pre_norm is None else self.pre_norm(tokens.x_TH)
        x_normed = x_TH.reshape(tokens.shape)  # the branches see the batch rows: sequences for the sequence-wise loss
        y = self.dense(x_normed, token_mask) + self.routed(x_normed, token_mask)
        y_TH = y.reshape(-1, self.hidden_size)
        return tokens.restore(y_TH if self.post_norm is None else self.post_norm(y_TH))

    # The routed branch's training interface.
    @property
    def stats(self) -> dict[str, torch.Tensor]:
        return self.routed.stats

    @property
    def aux_losses(self) -> dict[str, torch.Tensor]:
        return self.routed.aux_losses

    @property
    def applied_losses(self) -> frozenset[str]:
        return self.routed.applied_losses

    @property
    def aux_loss_scale(self) -> float:
        return self.routed.aux_loss_scale

    @aux_loss_scale.setter
    def aux_loss_scale(self, value: float) -> None:
        self.routed.aux_loss_scale = value

    @property
    def inject_aux_losses(self) -> bool:
        return self.routed.inject_aux_losses

    @inject_aux_losses.setter
    def inject_aux_losses(self, value: bool) -> None:
        self.routed.inject_aux_losses = value

    def update_bias(self) -> None:
        """aux_free: move the routed branch's correction bias (`MoEMLP.update_bias`)."""
        self.routed.update_bias()
