"""Input shapes and `token_mask`: layers compute on a [T, H] matrix of a static shape.

A masked token (`token_mask` False) keeps its row, zeroed before anything reads it (so
padding may hold anything, NaN included): it is not routed, not counted in losses or
statistics, and gets a zero output row and a zero input gradient, made by `torch.where`.
Keeping T static (no `nonzero`) is what lets `torch.compile(fullgraph=True)` trace a
masked forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tokens:
    """The layer input as tokens.

    Attributes:
        x_TH: [T, H], masked rows zero.
        mask_T: [T] bool, True for a real token; None when every token is real.
        sequences: the number of sequences: T is `sequences` consecutive runs of equal length (the batch
            rows of a [batch, seq, hidden] input; 2-D input is one sequence).
        shape: the input's shape, which the output takes.
    """

    x_TH: torch.Tensor
    mask_T: torch.Tensor | None
    sequences: int
    shape: torch.Size

    def restore(self, y_TH: torch.Tensor) -> torch.Tensor:
        """[T, H] -> the input's shape, masked rows exactly zero."""
        if self.mask_T is not None:
            y_TH = torch.where(self.mask_T.unsqueeze(1), y_TH, 0)
        return y_TH.reshape(self.shape)


def as_tokens(x: torch.Tensor, token_mask: torch.Tensor | None, hidden_size: int) -> Tokens:
    """Check and flatten `x` ([tokens, hidden] or [batch, seq, hidden]) and its `token_mask`."""
    if x.dim() not in (2, 3) or x.shape[-1] != hidden_size:
        raise ValueError(f"expected input of shape [tokens, {hidden_size}] or [batch, seq, {hidden_size}], got {list(x.shape)}")
    x_TH = x.reshape(-1, hidden_size)
    mask_T = None
    if token_mask is not None:
        if token_mask.dtype != torch.bool or token_mask.shape != x.shape[:-1]:
            raise ValueError(
                f"token_mask must be a bool tensor of shape {list(x.shape[:-1])}, got {token_mask.dtype} of shape {list(token_mask.shape)}"
            )
        mask_T = token_mask.reshape(-1)
        x_TH = torch.where(mask_T.unsqueeze(1), x_TH, 0)
    return Tokens(x_TH, mask_T, x.shape[0] if x.dim() == 3 else 1, x.shape)
