"""The Triton kernels as torch custom ops (`fastmoe_cfg::expert_linear` and its backward ops).

Custom ops with fake implementations are opaque to `torch.compile`, which then keeps the whole
layer in one graph (`fullgraph=True`), and carry an explicit backward (`register_autograd`).
This module imports torch only: each op imports its Triton kernel at its first call, so
`TRITON_INTERPRET` (which Triton reads when a kernel is decorated) can still be set until then.

    expert_linear             y = activation(x[index] · weight[e]ᵀ + bias[e]) over rows sorted by expert
                              (gather, bias and activation fused: `gather_gemm`), and h, the output
                              before the activation, when backward needs it
    expert_activation_backward  dh from dy and h (`activation.activation_backward`)
    expert_weight_grad        dW [E, O, I] and db [E, O] (`grouped_xty`)

Backward of `expert_linear` (no second derivative):
    dh = activation'(h) · dy         (dy itself for a plain linear)
    dx = Σ over the rows of each x row of dh · weight[e]   (the gather-GEMM on the transposed weight, then an
         index_add over the rows of each token when x was read through an index)
    dW, db = grouped XᵀY of dh and x[index]
Sentinel rows (from ends[-1] on) are never computed: zero outputs, zero input gradients.
"""

from __future__ import annotations

import torch

PLAIN = "identity"  # activation "identity" and not gated: a plain linear, nothing to keep for backward


def _plain(activation: str, gated: bool) -> bool:
    return activation == PLAIN and not gated


@torch.library.custom_op("fastmoe_cfg::expert_linear", mutates_args=())
def expert_linear(
    x: torch.Tensor,
    weight_EOI: torch.Tensor,
    bias_EO: torch.Tensor | None,
    index_N: torch.Tensor | None,
    ends_E: torch.Tensor,
    sentinels: bool,
    activation: str,
    gated: bool,
    limit: float,
    keep_hidden: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(activation(h), h) with h[n] = x[index[n]] · weight[e_n]ᵀ + bias[e_n], rows sorted by expert.

    Args:
        x: [T, I] rows read through `index_N` ([N] int), or [N, I] the rows themselves (index_N None).
        weight_EOI: [E, O, I]; bias_EO: [E, O] or None.
        ends_E: [E] int64, where each expert's rows end; rows from ends_E[-1] on are sentinels (zero).
        sentinels: whether sentinel rows may exist.
        activation, gated, limit: the hidden activation (`ActivationType` value; gpt_oss_glu's clamp).
        keep_hidden: return h [N, O] (else an empty [0, O]): backward needs it unless the linear is plain.

    Returns:
        y [N, O or O/2 when gated] and h.
    """
    from fastmoe_cfg.layers.moe.kernels.gather_gemm import gather_gemm
    from fastmoe_cfg.layers.moe.kernels.tuning import check_device

    check_device(x)
    keep_hidden = keep_hidden and not _plain(activation, gated)
    y, hidden = gather_gemm(
        x, weight_EOI, ends_E, bias_EO=bias_EO, index_N=index_N, activation=activation, gated=gated, limit=limit,
        keep_hidden=keep_hidden, sentinels=sentinels,
    )
    return y, hidden if hidden is not None else x.new_empty(0, weight_EOI.shape[1])


@expert_linear.register_fake
def _(x, weight_EOI, bias_EO, index_N, ends_E, sentinels, activation, gated, limit, keep_hidden):
    rows = x.shape[0] if index_N is None else index_N.shape[0]
    out_features = weight_EOI.shape[1]
    kept = rows if keep_hidden and not _plain(activation, gated) else 0
    return x.new_empty(rows, out_features // 2 if gated else out_features), x.new_empty(kept, out_features)


@torch.library.custom_op("fastmoe_cfg::expert_activation_backward", mutates_args=())
def expert_activation_backward(
    hidden_NO: torch.Tensor, grad_NI: torch.Tensor, ends_E: torch.Tensor, activation: str, gated: bool, limit: float
) -> torch.Tensor:
    """dh [N, O] of the activation from its output's gradient [N, I] and its input h [N, O]; sentinel rows 0."""
    from fastmoe_cfg.layers.moe.kernels.activation import activation_backward

    return activation_backward(hidden_NO, grad_NI.contiguous(), ends_E, activation, gated=gated, limit=limit)


@expert_activation_backward.register_fake
def _(hidden_NO, grad_NI, ends_E, activation, gated, limit):
    return torch.empty_like(hidden_NO)


@torch.library.custom_op("fastmoe_cfg::expert_weight_grad", mutates_args=())
def expert_weight_grad(
    grad_NO: torch.Tensor, x: torch.Tensor, index_N: torch.Tensor | None, ends_E: torch.Tensor, bias: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dW [E, O, I], db [E, O], or an empty [0] without `bias`) of `expert_linear` from dh [N, O]."""
    from fastmoe_cfg.layers.moe.kernels.grouped_xty import grouped_xty

    grad_weight, grad_bias = grouped_xty(grad_NO, x, ends_E, index_N=index_N, bias=bias)
    return grad_weight, grad_bias if grad_bias is not None else grad_NO.new_empty(0)


@expert_weight_grad.register_fake
def _(grad_NO, x, index_N, ends_E, bias):
    experts = ends_E.shape[0]
    return grad_NO.new_empty(experts, grad_NO.shape[1], x.shape[1]), grad_NO.new_empty((experts, grad_NO.shape[1]) if bias else (0,))


def _setup_context(ctx, inputs, output) -> None:
    x, weight_EOI, bias_EO, index_N, ends_E, sentinels, activation, gated, limit, _ = inputs
    _, hidden = output
    ctx.save_for_backward(x, weight_EOI, index_N, ends_E, hidden)
    ctx.has_bias, ctx.sentinels = bias_EO is not None, sentinels
    ctx.activation, ctx.gated, ctx.limit = activation, gated, limit
    ctx.mark_non_differentiable(hidden)


def _backward(ctx, grad_y: torch.Tensor, _grad_hidden):
    x, weight_EOI, index_N, ends_E, hidden = ctx.saved_tensors
    if _plain(ctx.activation, ctx.gated):
        grad_NO = grad_y.contiguous()
    elif hidden.shape[0] != grad_y.shape[0]:
        raise RuntimeError("fastmoe_cfg::expert_linear: backward needs h, the output before the activation: call it with keep_hidden=True")
    else:
        grad_NO = expert_activation_backward(hidden, grad_y, ends_E, ctx.activation, ctx.gated, ctx.limit)
    grad_x = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        rows_grad, _ = expert_linear(grad_NO, weight_EOI.transpose(1, 2), None, None, ends_E, ctx.sentinels, PLAIN, False, 0.0, False)
        grad_x = rows_grad if index_N is None else rows_grad.new_zeros(x.shape).index_add(0, index_N, rows_grad)
    if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
        grad_weight, grad_bias = expert_weight_grad(grad_NO, x, index_N, ends_E, ctx.has_bias)
        grad_bias = grad_bias if ctx.has_bias and ctx.needs_input_grad[2] else None
        grad_weight = grad_weight if ctx.needs_input_grad[1] else None
    return grad_x, grad_weight, grad_bias, None, None, None, None, None, None, None


expert_linear.register_autograd(_backward, setup_context=_setup_context)
