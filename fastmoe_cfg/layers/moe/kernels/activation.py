"""The activations of the schema in Triton: the epilogue of layer_1 (`activate`) and the backward kernel (`activation_backward`).

`activate` and `activation_grad` are `@triton.jit` functions that the gather-GEMM kernel and the
backward kernel inline; ACTIVATION is an `ActivationType` value (a compile-time string). They
compute in the accumulator's precision (float32, float64 for float64 inputs): the torch path
rounds layer_1's output to the input dtype first, so 16-bit results differ by a rounding.
Gated: `activate(gate, up)` = f(gate) · up, the gate in the first half of layer_1's rows; gpt_oss_glu
is always gated. Derivatives follow torch's backward formulas, including its choices at the kinks
(relu'(0) = 0; the clamps of gpt_oss_glu pass the gradient at the limit itself).

`activation_backward_reference` is the same gradient by torch autograd through
`fastmoe_cfg.layers.activations.hidden_activation`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastmoe_cfg.layers.activations import hidden_activation
from fastmoe_cfg.layers.moe.kernels.tuning import autotune_configs, on_device
from fastmoe_cfg.schemas.enums import ActivationType
from fastmoe_cfg.schemas.mlp import GPT_OSS_ALPHA

# The constants are literals inside the kernels (the interpreter cannot multiply a tl.constexpr global by a tensor):
# √(2/π) = 0.7978845608028654, GELU's cubic coefficient 0.044715, √½ = 0.7071067811865476,
# 1/√(2π) = 0.3989422804014327, and gpt_oss_glu's α, checked against the schema's here.
if GPT_OSS_ALPHA != 1.702:
    raise ImportError(f"gpt_oss_glu's alpha is {GPT_OSS_ALPHA} in the schema, 1.702 in the Triton kernels: update activation.py")


@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))  # never overflows
    return tl.where(x >= 0, 1 / (1 + e), e / (1 + e))


@triton.jit
def _tanh(z):
    # tanh(z) = 2·sigmoid(2z) - 1: one formula that the compiler and the interpreter both have.
    return 2 * _sigmoid(2 * z) - 1


@triton.jit
def _function(x, ACTIVATION: tl.constexpr):
    """f(x) elementwise, for every activation but gpt_oss_glu."""
    if ACTIVATION == "gelu":
        y = 0.5 * x * (1 + _tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    elif ACTIVATION == "gelu_exact":
        y = 0.5 * x * (1 + tl.math.erf(x * 0.7071067811865476))
    elif ACTIVATION == "silu":
        y = x * _sigmoid(x)
    elif ACTIVATION == "relu":
        y = tl.maximum(x, 0)
    elif ACTIVATION == "squared_relu":
        y = tl.maximum(x, 0) * tl.maximum(x, 0)
    elif ACTIVATION == "sigmoid":
        y = _sigmoid(x)
    else:  # identity
        y = x
    return y


@triton.jit
def _derivative(x, ACTIVATION: tl.constexpr):
    """f'(x) elementwise (torch's backward formulas), for every activation but gpt_oss_glu."""
    if ACTIVATION == "gelu":
        t = _tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x)
    elif ACTIVATION == "gelu_exact":
        d = 0.5 * (1 + tl.math.erf(x * 0.7071067811865476)) + x * tl.exp(-0.5 * x * x) * 0.3989422804014327
    elif ACTIVATION == "silu":
        s = _sigmoid(x)
        d = s * (1 + x * (1 - s))
    elif ACTIVATION == "relu":
        d = tl.where(x > 0, 1.0, 0.0).to(x.dtype)
    elif ACTIVATION == "squared_relu":
        d = 2 * tl.maximum(x, 0)
    elif ACTIVATION == "sigmoid":
        s = _sigmoid(x)
        d = s * (1 - s)
    else:  # identity
        d = x * 0 + 1
    return d


@triton.jit
def activate(gate, up, limit, ACTIVATION: tl.constexpr, GATED: tl.constexpr):
    """The hidden layer from layer_1's output: f(gate) · up (GATED), f(gate) (not; `up` is ignored), or gpt_oss_glu."""
    if ACTIVATION == "gpt_oss_glu":
        g = tl.minimum(gate, limit)
        u = tl.minimum(tl.maximum(up, -limit), limit)
        out = (u + 1) * g * _sigmoid(1.702 * g)
    elif GATED:
        out = _function(gate, ACTIVATION) * up
    else:
        out = _function(gate, ACTIVATION)
    return out


@triton.jit
def activation_grad(gate, up, grad, limit, ACTIVATION: tl.constexpr, GATED: tl.constexpr):
    """(d gate, d up) of Σ grad · activate(gate, up); d up is meaningless when not GATED."""
    if ACTIVATION == "gpt_oss_glu":
        g = tl.minimum(gate, limit)
        u = tl.minimum(tl.maximum(up, -limit), limit)
        s = _sigmoid(1.702 * g)
        d_gate = tl.where(gate <= limit, grad * (u + 1) * (s + g * 1.702 * s * (1 - s)), 0.0)
        d_up = tl.where((up >= -limit) & (up <= limit), grad * g * s, 0.0)
    elif GATED:
        d_gate = grad * up * _derivative(gate, ACTIVATION)
        d_up = grad * _function(gate, ACTIVATION)
    else:
        d_gate = grad * _derivative(gate, ACTIVATION)
        d_up = d_gate
    return d_gate, d_up


@triton.autotune(
    configs=autotune_configs(
        [triton.Config({"BLOCK_R": 32, "BLOCK_C": 128}, num_warps=4), triton.Config({"BLOCK_R": 16, "BLOCK_C": 256}, num_warps=4)],
        triton.Config({"BLOCK_R": 32, "BLOCK_C": 64}, num_warps=1),
    ),
    key=["COLS"],
)
@triton.jit
def _activation_backward_kernel(
    hidden_ptr, grad_ptr, out_ptr, ends_ptr,
    experts, rows, COLS, limit,
    stride_hm, stride_hn, stride_gm, stride_gn, stride_om, stride_on,
    ACTIVATION: tl.constexpr, GATED: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    real = tl.load(ends_ptr + experts - 1)  # rows from `real` on are sentinels: their gradient is 0
    r = (tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    inside = (r < rows)[:, None] & (c < COLS)[None, :]
    live = (r < real)[:, None] & (c < COLS)[None, :]
    gate = tl.load(hidden_ptr + r[:, None] * stride_hm + c[None, :] * stride_hn, mask=live, other=0).to(COMPUTE)
    up = gate
    if GATED:
        up = tl.load(hidden_ptr + r[:, None] * stride_hm + (c + COLS)[None, :] * stride_hn, mask=live, other=0).to(COMPUTE)
    grad = tl.load(grad_ptr + r[:, None] * stride_gm + c[None, :] * stride_gn, mask=live, other=0).to(COMPUTE)
    d_gate, d_up = activation_grad(gate, up, grad, limit, ACTIVATION, GATED)
    out_type = out_ptr.dtype.element_ty
    tl.store(out_ptr + r[:, None] * stride_om + c[None, :] * stride_on, tl.where(live, d_gate, 0).to(out_type), mask=inside)
    if GATED:
        tl.store(out_ptr + r[:, None] * stride_om + (c + COLS)[None, :] * stride_on, tl.where(live, d_up, 0).to(out_type), mask=inside)


def compute_type(dtype: torch.dtype):
    """The precision the kernels compute and accumulate in: float64 for float64 inputs, else float32."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def activation_backward(
    hidden_NO: torch.Tensor, grad_NI: torch.Tensor, ends_E: torch.Tensor, activation: str, *, gated: bool, limit: float
) -> torch.Tensor:
    """The gradient of layer_1's output [N, O] (O = 2I when gated) from the activation output's gradient [N, I].

    Rows from ends_E[-1] on (sentinels) get exactly 0.
    """
    rows, cols = grad_NI.shape
    out_NO = torch.empty_like(hidden_NO)
    if rows == 0:
        return out_NO
    grid = lambda meta: (triton.cdiv(rows, meta["BLOCK_R"]), triton.cdiv(cols, meta["BLOCK_C"]))
    with on_device(hidden_NO):
        _activation_backward_kernel[grid](
            hidden_NO, grad_NI, out_NO, ends_E,
            ends_E.shape[0], rows, cols, float(limit),
            *hidden_NO.stride(), *grad_NI.stride(), *out_NO.stride(),
            ACTIVATION=activation, GATED=gated, COMPUTE=compute_type(hidden_NO.dtype),
        )
    return out_NO


def activation_backward_reference(
    hidden_NO: torch.Tensor, grad_NI: torch.Tensor, ends_E: torch.Tensor, activation: str, *, gated: bool, limit: float
) -> torch.Tensor:
    """`activation_backward` by torch autograd through `hidden_activation`."""
    with torch.enable_grad():
        hidden_NO = hidden_NO.detach().requires_grad_()
        out_NI = hidden_activation(hidden_NO, ActivationType(activation), gated=gated, limit=limit)
        (grad_NO,) = torch.autograd.grad(out_NI, hidden_NO, grad_NI)
    real_N = torch.arange(hidden_NO.shape[0], device=hidden_NO.device) < ends_E[-1:]
    return torch.where(real_N.unsqueeze(1), grad_NO, 0)
