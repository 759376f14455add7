"""The expert-choice layer, from the public steps of `fastmoe_cfg.plugin`.

Shape legend (as in fastmoe_cfg's MoE layer): T tokens, H hidden, I expert intermediate size,
E experts, C the capacity of one expert, N = E·C routed rows.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from fastmoe_cfg.plugin import (
    GroupedExperts,
    Linear,
    LinearConfig,
    as_tokens,
    build_normalization,
    expert_capacity,
    inject_loss,
    normalization_lr_scales,
    permute,
    unpermute,
    upcast,
    z_loss,
)
from fastmoe_expert_choice import ExpertChoiceMLPConfig


class ExpertChoiceMLP(nn.Module):
    """Expert-choice routing (Zhou et al., 2022, "Mixture-of-Experts with Expert Choice Routing", eq. 1-3). For the T tokens:

    1. logits = x · router.weightᵀ, in float32 at least                     [T, E]  (the raw input, never pre_norm)
    2. scores S = softmax over the experts of the logits                       [T, E]  (eq. 1)
    3. each expert e takes the C real tokens of highest S[:, e], C = min(T, ⌈capacity_factor · T · k / E⌉)  (eq. 2:
       TopK(Sᵀ, C)); a masked token is never chosen (with fewer than C real tokens, the rest are sentinel rows)
    4. out_t = Σ over the experts e that chose t of S[t, e] · expert_e(pre_norm(x_t)); zero for a token no expert chose (eq. 3)
    5. post_norm(out)

    Unlike the paper (which counts T over a whole batch group), T is the rows of this forward, masked
    ones included, so C is a static shape and the layer compiles as one graph.
    Parameters: `router.weight` [E, H]; `experts.layer_1.weight` [E, I or 2I, H], `experts.layer_2.weight`
    [E, H, I] (no biases); `pre_norm.*`, `post_norm.*`. `stats` after each forward: `tokens_per_expert` [E]
    (real tokens chosen), `unchosen_tokens` (real tokens no expert chose), `z_loss`.
    """

    INITIALIZATION_ORDER = ("router", "pre_norm", "experts", "post_norm")

    def __init__(self, config: ExpertChoiceMLPConfig, hidden_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size
        self._capacity = Fraction(repr(config.capacity_factor)).as_integer_ratio()
        self.aux_loss_scale = 1.0  # multiplies the injected z-loss gradient, as in fastmoe_cfg's MoEMLP
        self.stats: dict[str, torch.Tensor] = {}
        factory = {"device": device, "dtype": dtype}
        experts, intermediate = config.experts, config.intermediate_size
        # Built in INITIALIZATION_ORDER: each sub-module draws its parameters as it is built.
        self.router = Linear(LinearConfig(), hidden_size, experts, bias=False, default_std=hidden_size**-0.5, **factory)
        self.pre_norm = build_normalization(config.pre_norm, hidden_size, **factory)
        rows_1 = intermediate * (2 if config.gated else 1)
        self.experts = GroupedExperts(
            Linear(LinearConfig(), hidden_size, rows_1, bias=False, default_std=hidden_size**-0.5, experts=experts, **factory),
            Linear(LinearConfig(), intermediate, hidden_size, bias=False, default_std=intermediate**-0.5, experts=experts, **factory),
            activation=config.activation,
            gated=config.gated,
        )
        self.post_norm = build_normalization(config.post_norm, hidden_size, **factory)
        scale = 1.0 if config.lr_scale is None else config.lr_scale
        self.lr_scales = {
            **{name: scale for name, _ in self.named_parameters() if name.startswith(("router.", "experts."))},
            **normalization_lr_scales(config.pre_norm, "pre_norm", scale),
            **normalization_lr_scales(config.post_norm, "post_norm", scale),
        }

    def reset_parameters(self) -> None:
        """Draw every parameter again, in the constructor's order (a meta-device build, `to_empty()`, then this)."""
        for name in self.INITIALIZATION_ORDER:
            if getattr(self, name) is not None:
                getattr(self, name).reset_parameters()

    def capacity(self, tokens: int) -> int:
        """C: the tokens each expert takes out of `tokens` rows."""
        return min(tokens, expert_capacity(self._capacity, tokens, self.config.experts_per_token, self.config.experts))

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [tokens, H] or [batch, seq, H]; token_mask: bool, x.shape[:-1], True for a real token. Returns x's shape."""
        tokens = as_tokens(x, token_mask, self.hidden_size)
        x_TH, mask_T = tokens.x_TH, tokens.mask_T
        experts = self.config.experts
        logits_TE = F.linear(upcast(x_TH), upcast(self.router.weight))
        scores_TE = torch.softmax(logits_TE, dim=-1)
        loss = z_loss(logits_TE, mask_T)
        if self.training and self.config.z_loss_coefficient > 0:  # scores_TE lies on the path from the logits to the output
            scores_TE = inject_loss(scores_TE, self.config.z_loss_coefficient * loss, self.aux_loss_scale)

        capacity = self.capacity(x_TH.shape[0])
        selection_TE = scores_TE.detach()
        if mask_T is not None:  # scores lie in [0, 1]: -1 ranks a masked token below every real one
            selection_TE = torch.where(mask_T.unsqueeze(1), selection_TE, -1.0)
        token_EC = selection_TE.t().topk(capacity, dim=1).indices  # eq. 2: each expert's C tokens
        weight_EC = scores_TE.t().gather(1, token_EC).to(x_TH.dtype)
        expert_EC = torch.arange(experts, device=x_TH.device).unsqueeze(1).expand(experts, capacity)
        if mask_T is not None:  # a masked token taken to fill C is a sentinel row (expert E): never computed
            expert_EC = torch.where(mask_T.index_select(0, token_EC.reshape(-1)).view_as(token_EC), expert_EC, experts)

        # `permute` sorts the N = E·C choices by expert (sentinels last) as the rows of N one-choice "tokens";
        # the plan's token_N then maps each row back to its real token.
        token_N = token_EC.reshape(-1)
        plan = permute(expert_EC.reshape(-1, 1), weight_EC.reshape(-1, 1), experts, sentinels=mask_T is not None, max_rows=capacity)
        plan = dataclasses.replace(plan, token_N=token_N.index_select(0, plan.token_N), tokens=x_TH.shape[0])

        normed_TH = x_TH if self.pre_norm is None else self.pre_norm(x_TH)
        out_TH = unpermute(self.experts(normed_TH, plan), plan)  # eq. 3; a token no expert chose stays zero
        if self.post_norm is not None:
            out_TH = self.post_norm(out_TH)
        self.stats = self._statistics(plan, mask_T, loss)
        return tokens.restore(out_TH)

    @torch.no_grad()
    def _statistics(self, plan, mask_T: torch.Tensor | None, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        chosen_T = torch.zeros(plan.tokens, dtype=torch.int64, device=plan.token_N.device)
        chosen_T = chosen_T.index_add(0, plan.token_N, plan.real_N.to(torch.int64))
        unchosen_T = chosen_T == 0
        if mask_T is not None:
            unchosen_T = unchosen_T & mask_T
        return {"tokens_per_expert": plan.counts_E, "unchosen_tokens": unchosen_T.sum(), "z_loss": loss.detach()}
