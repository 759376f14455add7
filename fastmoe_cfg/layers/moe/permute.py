"""`permute`: the routed (token, expert) assignments as rows sorted by expert; `unpermute`: rows back to tokens.

Shape legend in `fastmoe_cfg.layers.moe`. N = T·K rows always (a static shape, so the
layer compiles as one graph): a masked token's assignments and the assignments dropped
by capacity carry the sentinel expert id E, sort after every real row, and are never
computed (`GroupedExperts` gives them exactly zero outputs and input gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PermutePlan:
    """Where each routed row comes from and goes to.

    Attributes:
        token_N: [N] int64, the token of each row; rows are sorted by expert (stable: token order within an expert).
        expert_N: [N] int64, each row's expert, E for a sentinel row (masked token or dropped assignment).
        weight_N: [N], the routing weight of each row.
        counts_E: [E] int64, the real rows of each expert.
        ends_E: [E] int64, counts_E.cumsum(): expert e owns rows ends_E[e] - counts_E[e] .. ends_E[e] - 1;
            rows from ends_E[-1] on are sentinels.
        experts: E.
        tokens: T.
        max_rows: the most rows an expert can have (T, or the capacity when it is known without a host sync),
            for this process's tokens: an expert-parallel exchange that brings rows from other ranks must
            replace it.
        sentinels: whether sentinel rows may exist (a mask or a capacity); when False every row is real
            and the steps skip the zeroing of sentinel rows.
    """

    token_N: torch.Tensor
    expert_N: torch.Tensor
    weight_N: torch.Tensor
    counts_E: torch.Tensor
    ends_E: torch.Tensor
    experts: int
    tokens: int
    max_rows: int
    sentinels: bool

    @property
    def real_N(self) -> torch.Tensor:
        """[N] bool, True for a row that is computed."""
        return self.expert_N < self.experts

    @property
    def safe_expert_N(self) -> torch.Tensor:
        """[N] each row's expert with sentinels mapped to E - 1, to index per-expert tensors; sentinel results are discarded."""
        return self.expert_N.clamp(max=self.experts - 1)

    def gather(self, x_TH: torch.Tensor) -> torch.Tensor:
        """[T, H] -> [N, H]: each row's token."""
        return x_TH.index_select(0, self.token_N)


def expert_counts(experts_TK: torch.Tensor, experts: int) -> torch.Tensor:
    """[E] int64: assignments per expert, sentinel entries (E) not counted. A static shape, unlike bincount."""
    flat_N = experts_TK.reshape(-1)
    counts = torch.zeros(experts + 1, dtype=torch.int64, device=flat_N.device)
    return counts.index_add_(0, flat_N, torch.ones_like(flat_N))[:experts]


def permute(
    experts_TK: torch.Tensor, weights_TK: torch.Tensor, experts: int, *, sentinels: bool, max_rows: int | None = None
) -> PermutePlan:
    """The plan of rows sorted by expert from the routing [T, K] (entries equal to E are sentinels).

    `sentinels`: whether `experts_TK` may hold E (masked tokens, capacity); `max_rows`: a bound on
    any expert's rows below T (the capacity), when known.
    """
    tokens, k = experts_TK.shape
    flat_N = experts_TK.reshape(-1)
    order_N = flat_N.argsort(stable=True)
    counts_E = expert_counts(experts_TK, experts)
    return PermutePlan(
        token_N=order_N // k,
        expert_N=flat_N.index_select(0, order_N),
        weight_N=weights_TK.reshape(-1).index_select(0, order_N),
        counts_E=counts_E,
        ends_E=counts_E.cumsum(0),
        experts=experts,
        tokens=tokens,
        max_rows=tokens if max_rows is None else min(tokens, max_rows),
        sentinels=sentinels,
    )


def unpermute(y_NH: torch.Tensor, plan: PermutePlan) -> torch.Tensor:
    """[N, H] -> [T, H]: each token's rows summed (sentinel rows are zero, so they add nothing)."""
    return y_NH.new_zeros(plan.tokens, y_NH.shape[1]).index_add_(0, plan.token_N, y_NH)
