"""A float64 reference of the layers, written from ../shared/NUMERICS.md one token at a time.

It shares no code with fastmoe_cfg.layers: it reads the layer's parameters by their
documented names (DESIGN.md section 4) and recomputes the output with plain tensor
arithmetic, so autograd through it gives reference gradients too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


def activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "gelu":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    if name == "gelu_exact":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if name == "silu":
        return x / (1 + torch.exp(-x))
    if name == "relu":
        return torch.where(x > 0, x, torch.zeros_like(x))
    if name == "squared_relu":
        return torch.where(x > 0, x, torch.zeros_like(x)) ** 2
    if name == "identity":
        return x
    raise ValueError(name)


@dataclass
class Norm:
    kind: str  # layer_norm | rms_norm
    epsilon: float = 1e-5
    zero_centered: bool = False

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        n = x.shape[-1]
        if self.kind == "rms_norm":
            y = x / torch.sqrt((x * x).sum() / n + self.epsilon)
        else:
            mean = x.sum() / n
            y = (x - mean) / torch.sqrt(((x - mean) ** 2).sum() / n + self.epsilon)
        y = y * (1 + weight if self.zero_centered else weight)
        return y if bias is None else y + bias


@dataclass
class Spec:
    """What the reference needs to know about a config (mirrors the YAML fields it tests)."""

    activation: str = "gelu"
    gated: bool = False
    experts_per_token: int = 1
    shared_experts: int = 0
    routing: str = "aux_loss"
    router_input_scale: float = 1.0
    pre_norm: Norm | None = None
    post_norm: Norm | None = None
    router_normalization: Norm | None = None
    extra: dict = field(default_factory=dict)


def leaf_parameters(layer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The layer's parameters as float64 leaves that require grad, by name."""
    return {name: p.detach().to(torch.float64).clone().requires_grad_() for name, p in layer.named_parameters()}


def mlp(p: dict, prefix: str, spec: Spec, x: torch.Tensor, expert: int | None = None) -> torch.Tensor:
    """One MLP on one token: layer_2(act(layer_1(x))), gate rows first when gated."""

    def get(name):
        value = p.get(f"{prefix}{name}")
        return value if value is None or expert is None else value[expert]

    h = get("layer_1.weight") @ x
    if get("layer_1.bias") is not None:
        h = h + get("layer_1.bias")
    if spec.gated:
        half = h.shape[0] // 2
        a = activation(spec.activation, h[:half]) * h[half:]
    else:
        a = activation(spec.activation, h)
    y = get("layer_2.weight") @ a
    if get("layer_2.bias") is not None:
        y = y + get("layer_2.bias")
    return y


def dense(p: dict, spec: Spec, x_TH: torch.Tensor) -> torch.Tensor:
    rows = []
    for x in x_TH:
        if spec.pre_norm:
            x = spec.pre_norm(x, p["pre_norm.weight"], p.get("pre_norm.bias"))
        y = mlp(p, "", spec, x)
        if spec.post_norm:
            y = spec.post_norm(y, p["post_norm.weight"], p.get("post_norm.bias"))
        rows.append(y)
    return torch.stack(rows)


def router_logits(p: dict, spec: Spec, x: torch.Tensor) -> torch.Tensor:
    r = x
    if spec.router_normalization:
        r = spec.router_normalization(r, p["router_normalization.weight"], p.get("router_normalization.bias"))
    if "router_scale" in p:
        r = r * p["router_scale"]
    r = r * spec.router_input_scale
    return p["router.weight"] @ r


def sinkhorn_choice(logits_TE: torch.Tensor, k: int, tolerance: float = 1e-4) -> list[list[int]]:
    """Megatron-LM's Sinkhorn on exp(logits), then top-k per token (indices only)."""
    cost = torch.exp(logits_TE.detach())
    tokens, experts = cost.shape
    d1 = torch.ones(experts, dtype=cost.dtype)
    while True:
        d0 = (1 / tokens) / ((d1 * cost).sum(1) + 1e-8)
        new_d1 = (1 / experts) / ((d0[:, None] * cost).sum(0) + 1e-8)
        done = (new_d1 - d1).abs().mean() <= tolerance
        d1 = new_d1
        if done:
            break
    balanced = d1 * cost * d0[:, None]
    return [sorted(range(experts), key=lambda e: -balanced[t, e].item())[:k] for t in range(tokens)]


def moe(p: dict, spec: Spec, x_TH: torch.Tensor, *, training: bool = False) -> torch.Tensor:
    """The MoE layer on every token of x_TH [T, H], in float64, from NUMERICS.md."""
    k = spec.experts_per_token
    logits = torch.stack([router_logits(p, spec, x) for x in x_TH])
    sinkhorn_experts = sinkhorn_choice(logits, k) if spec.routing == "sinkhorn" and training else None
    rows = []
    for t, x in enumerate(x_TH):
        z = logits[t]
        order = sorted(range(z.shape[0]), key=lambda e: -z[e].item())
        if spec.routing == "aux_loss":
            chosen = order[:k]
            selected = torch.stack([z[e] for e in chosen])
            weights = torch.exp(selected - selected.max())
            weights = weights / weights.sum()
        else:
            scores = 1 / (1 + torch.exp(-z)) if k == 1 else torch.exp(z - z.max()) / torch.exp(z - z.max()).sum()
            chosen = sinkhorn_experts[t] if training else sorted(range(z.shape[0]), key=lambda e: -scores[e].item())[:k]
            weights = torch.stack([scores[e] for e in chosen])
        if "router_per_expert_scale" in p:
            weights = weights * torch.stack([p["router_per_expert_scale"][e] for e in chosen])
        xe = x if spec.pre_norm is None else spec.pre_norm(x, p["pre_norm.weight"], p.get("pre_norm.bias"))
        y = sum(w * mlp(p, "experts.", spec, xe, expert=e) for w, e in zip(weights, chosen))
        if spec.shared_experts:
            y = y + mlp(p, "shared.", spec, xe)
        if spec.post_norm:
            y = spec.post_norm(y, p["post_norm.weight"], p.get("post_norm.bias"))
        rows.append(y)
    return torch.stack(rows)


def choices(p: dict, spec: Spec, x_TH: torch.Tensor) -> torch.Tensor:
    """The top-k experts of each token by logit (aux_loss routing), as [T, k]."""
    logits = torch.stack([router_logits(p, spec, x) for x in x_TH])
    return logits.topk(spec.experts_per_token, dim=-1).indices
