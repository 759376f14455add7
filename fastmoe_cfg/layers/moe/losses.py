"""Router losses and their injection into the backward pass.

Shape legend: T tokens, E routed experts, K experts per token.
"""

import torch

from fastmoe_cfg.layers.moe.router import upcast


def load_balancing_loss(probs_TE: torch.Tensor, experts_TK: torch.Tensor) -> torch.Tensor:
    """Switch-Transformer load-balancing loss, per layer: E · Σ_e f_e · P_e.

    P_e = mean over tokens of the normalised scores (softmax(logits) by default); f_e = fraction of tokens whose top-k
    contains e, so Σ_e f_e = K. Normalisation: K at the balanced optimum
    (f_e = K/E, P_e = 1/E); at most E (every token's probability on experts that all
    tokens pick); 0 without tokens. Gradients flow through P only (the counts f are discrete).
    This is Fast-LLM's and HF's formula (Fedus et al. 2021, eq. 4, with top-k counts)
    applied to one layer; HF pools all layers into one loss instead.
    """
    tokens, experts = probs_TE.shape
    counts_E = torch.bincount(experts_TK.reshape(-1), minlength=experts)
    tokens = max(tokens, 1)  # no tokens: 0, not 0/0
    return experts * (counts_E.to(probs_TE.dtype) * probs_TE.sum(dim=0)).sum() / tokens**2


def sequence_load_balancing_loss(probs_TE: torch.Tensor, experts_TK: torch.Tensor, sequence_T: torch.Tensor | None, sequences: int) -> torch.Tensor:
    """DeepSeek-V3's sequence-wise balance loss, averaged over the sequences that have tokens.

    Per sequence s of T_s tokens: Σ_e f_e · P_e, f_e = E / (K · T_s) · (tokens of s whose
    top-k contains e), P_e = mean over the tokens of s of the normalised scores. 1 at the
    balanced optimum (f_e = 1, P_e = 1/E). Gradients flow through P only.
    `sequence_T` [T] is each token's sequence index in [0, sequences); None: one sequence.
    """
    tokens, experts = probs_TE.shape
    k = experts_TK.shape[1]
    if sequence_T is None:
        return load_balancing_loss(probs_TE, experts_TK) / k
    counts_SE = probs_TE.new_zeros(sequences, experts).index_put_(
        (sequence_T.repeat_interleave(k), experts_TK.reshape(-1)), probs_TE.new_ones(()), accumulate=True
    )
    probability_sum_SE = probs_TE.new_zeros(sequences, experts).index_add(0, sequence_T, probs_TE)
    tokens_S = torch.bincount(sequence_T, minlength=sequences).to(probs_TE.dtype)
    per_sequence_S = experts / k * (counts_SE * probability_sum_SE).sum(dim=-1) / tokens_S.clamp(min=1).square()
    present_S = (tokens_S > 0).to(probs_TE.dtype)
    return (per_sequence_S * present_S).sum() / present_S.sum().clamp(min=1)


def z_loss(logits_TE: torch.Tensor) -> torch.Tensor:
    """Router z-loss (ST-MoE, Zoph et al. 2022, eq. 5): mean over tokens of logsumexp(logits)², in float32 at least (0 without tokens)."""
    return torch.logsumexp(upcast(logits_TE), dim=-1).square().sum() / max(logits_TE.shape[0], 1)


def router_entropy(probs_TE: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of the entropy of the routing distribution, in nats (0 without tokens)."""
    return torch.special.entr(probs_TE).sum() / max(probs_TE.shape[0], 1)


class _InjectLoss(torch.autograd.Function):
    """Identity on `tensor` in forward; in backward, `loss` receives the gradient `scale`."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, loss: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        ctx.loss_dtype = loss.dtype
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output, torch.tensor(ctx.scale, dtype=ctx.loss_dtype, device=grad_output.device), None


def inject_loss(tensor: torch.Tensor, loss: torch.Tensor, scale: float) -> torch.Tensor:
    """Return `tensor`, such that backward through it also adds the gradient of `scale · loss`.

    This is how an auxiliary loss reaches the router without the training loop adding
    it to the model's loss (Fast-LLM's AuxiliaryLoss): `tensor` must lie on the path
    from the loss's inputs to the layer's output.
    """
    return _InjectLoss.apply(tensor, loss, scale)
