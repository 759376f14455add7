"""Router losses and their injection into the backward pass.

Shape legend: T tokens, E routed experts, K experts per token.
"""

import torch

from fastmoe_cfg.layers.moe.router import upcast


def load_balancing_loss(probs_TE: torch.Tensor, experts_TK: torch.Tensor) -> torch.Tensor:
    """Switch-Transformer load-balancing loss, per layer: E · Σ_e f_e · P_e.

    P_e = mean over tokens of softmax(logits)_e; f_e = fraction of tokens whose top-k
    contains e, so Σ_e f_e = K. Normalisation: K at the balanced optimum
    (f_e = K/E, P_e = 1/E); at most E (every token's probability on experts that all
    tokens pick). Gradients flow through P only (the counts f are discrete).
    This is Fast-LLM's and HF's formula (Fedus et al. 2021, eq. 4, with top-k counts)
    applied to one layer; HF pools all layers into one loss instead.
    """
    tokens, experts = probs_TE.shape
    counts_E = torch.bincount(experts_TK.reshape(-1), minlength=experts)
    fraction_E = counts_E.to(probs_TE.dtype) / tokens
    return experts * (fraction_E * probs_TE.mean(dim=0)).sum()


def z_loss(logits_TE: torch.Tensor) -> torch.Tensor:
    """Router z-loss (ST-MoE, Zoph et al. 2022, eq. 5): mean over tokens of logsumexp(logits)², in float32 at least."""
    return torch.logsumexp(upcast(logits_TE), dim=-1).square().mean()


def router_entropy(probs_TE: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of the entropy of the routing distribution, in nats."""
    return -torch.xlogy(probs_TE, probs_TE).sum(dim=-1).mean()


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
