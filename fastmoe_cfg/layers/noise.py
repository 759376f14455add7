"""Training noise drawn per real token: multiplicative jitter and dropout.

Every draw fills a [T, ...] tensor from torch's generator and gives the real token of rank r
(its index among the real tokens) row r, so the padding of a masked input changes nothing
(on the CPU, whose generator fills a tensor in order; the generator still advances by T rows).
A recompute replays the draws (torch.utils.checkpoint restores the generator's state).
"""

from __future__ import annotations

import torch

from fastmoe_cfg.schemas.enums import JitterDistribution


def token_ranks(mask_T: torch.Tensor) -> torch.Tensor:
    """[T] each token's index among the real tokens (a masked token gets its predecessor's, never used)."""
    return (mask_T.cumsum(0) - 1).clamp(min=0)


def real_token_draws(draws_T_: torch.Tensor, mask_T: torch.Tensor | None) -> torch.Tensor:
    """Random rows [T, ...] given to the real tokens in order: the real token of rank r takes row r."""
    if mask_T is None:
        return draws_T_
    return draws_T_.index_select(0, token_ranks(mask_T))


def jitter_noise(like: torch.Tensor, eps: float, distribution: JitterDistribution, mask_T: torch.Tensor | None) -> torch.Tensor:
    """Multiplicative noise of `like`'s shape [T, ...] and dtype: U(1 - eps, 1 + eps), or N(1, eps²) when normal.

    Uniform noise is drawn as Hugging Face's Mixtral draws `router_jitter_noise`
    (`torch.empty_like(x).uniform_(1 - eps, 1 + eps)`), so both give the same noise from the same
    generator state when no token is masked. Normal noise is 1 + eps · √(-2 ln(1 - u₁)) · cos(2π u₂)
    (Box-Muller) from uniform draws u [T, 2, ...], not `normal_`, whose CPU kernel draws differently
    for different sizes: a token's noise would depend on the padding.
    """
    if distribution == JitterDistribution.normal:
        u_T2_ = real_token_draws(torch.rand(like.shape[0], 2, *like.shape[1:], dtype=like.dtype, device=like.device), mask_T)
        return 1.0 + eps * torch.sqrt(-2.0 * torch.log1p(-u_T2_[:, 0])) * torch.cos(2.0 * torch.pi * u_T2_[:, 1])
    return real_token_draws(torch.empty_like(like).uniform_(1.0 - eps, 1.0 + eps), mask_T)


def dropout(x_TH: torch.Tensor, p: float, mask_T: torch.Tensor | None) -> torch.Tensor:
    """Inverted dropout: each value kept with probability 1 - p and scaled by 1/(1 - p), else 0."""
    keep_TH = real_token_draws(torch.empty_like(x_TH).bernoulli_(1.0 - p), mask_T)
    return x_TH * keep_TH * (1.0 / (1.0 - p))
