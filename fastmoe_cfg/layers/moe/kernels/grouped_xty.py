"""The grouped XᵀY: the weight (and bias) gradient of an expert linear over rows sorted by expert.

    grad_weight[e] = Σ_{n of expert e} grad[n]ᵀ · x[src(n)]      [E, O, I]
    grad_bias[e]   = Σ_{n of expert e} grad[n]                  [E, O]

src(n) = index[n] (the token rows that the gather-GEMM read by index) or n. One program per
(expert, O block, I block) walks its expert's rows BLOCK_R at a time, accumulating in float32
(float64 for float64 inputs); an expert without rows gets zeros; sentinel rows (from ends[-1] on)
belong to no expert and are never read. The bias gradient is summed by the programs of the first
I block from the tiles they load anyway. `grouped_xty_reference` computes the same in torch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastmoe_cfg.layers.moe.kernels.activation import compute_type
from fastmoe_cfg.layers.moe.kernels.tuning import add, autotune_configs, dot_precision, on_device

GPU_CONFIGS = [
    triton.Config({"BLOCK_O": 128, "BLOCK_I": 128, "BLOCK_R": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_O": 128, "BLOCK_I": 64, "BLOCK_R": 64}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_O": 64, "BLOCK_I": 128, "BLOCK_R": 64}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_O": 64, "BLOCK_I": 64, "BLOCK_R": 32}, num_warps=4, num_stages=4),
]
INTERPRETER_CONFIG = triton.Config({"BLOCK_O": 64, "BLOCK_I": 64, "BLOCK_R": 16}, num_warps=1)  # large tiles: the interpreter runs each program in Python


@triton.autotune(configs=autotune_configs(GPU_CONFIGS, INTERPRETER_CONFIG), key=["O", "I"])
@triton.jit
def _grouped_xty_kernel(
    grad_ptr, x_ptr, index_ptr, ends_ptr, grad_weight_ptr, grad_bias_ptr,
    O, I,
    stride_gm, stride_go, stride_xm, stride_xi, stride_we, stride_wo, stride_wi, stride_be, stride_bo,
    HAS_INDEX: tl.constexpr, BIAS: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr,
    BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_R: tl.constexpr,
):
    expert = tl.program_id(0)
    end = tl.load(ends_ptr + expert).to(tl.int64)
    start = tl.load(ends_ptr + expert - 1, mask=expert > 0, other=0).to(tl.int64)
    outs = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
    ins = tl.program_id(2) * BLOCK_I + tl.arange(0, BLOCK_I)
    out_mask = outs < O
    in_mask = ins < I
    acc = tl.full((BLOCK_O, BLOCK_I), 0, dtype=COMPUTE)
    bias_acc = tl.full((BLOCK_O,), 0, dtype=COMPUTE)
    for r0 in range(start, end, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R).to(tl.int64)
        row_mask = rows < end
        source = rows
        if HAS_INDEX:
            source = tl.load(index_ptr + rows, mask=row_mask, other=0).to(tl.int64)
        grad = tl.load(grad_ptr + rows[:, None] * stride_gm + outs[None, :] * stride_go, mask=row_mask[:, None] & out_mask[None, :], other=0)
        x = tl.load(x_ptr + source[:, None] * stride_xm + ins[None, :] * stride_xi, mask=row_mask[:, None] & in_mask[None, :], other=0)
        acc = tl.dot(tl.trans(grad), x, acc, input_precision=PRECISION, out_dtype=COMPUTE)
        if BIAS:
            bias_acc += tl.reduce(grad.to(COMPUTE), 0, add)  # tl.sum (see tuning)
    grad_weight = grad_weight_ptr + expert.to(tl.int64) * stride_we + outs[:, None] * stride_wo + ins[None, :] * stride_wi
    tl.store(grad_weight, acc.to(grad_weight_ptr.dtype.element_ty), mask=out_mask[:, None] & in_mask[None, :])
    if BIAS:  # noqa: SIM102 (a compile-time condition, then a runtime one)
        if tl.program_id(2) == 0:
            grad_bias = grad_bias_ptr + expert.to(tl.int64) * stride_be + outs * stride_bo
            tl.store(grad_bias, bias_acc.to(grad_bias_ptr.dtype.element_ty), mask=out_mask)


def grouped_xty(
    grad_NO: torch.Tensor, x: torch.Tensor, ends_E: torch.Tensor, *, index_N: torch.Tensor | None = None, bias: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weight gradient [E, O, I] (and with `bias` the bias gradient [E, O]) of an expert linear.

    Args:
        grad_NO: [N, O] the gradient of the linear's output rows (before any activation).
        x: [T, I] read through `index_N`, or [N, I] the rows themselves.
        ends_E: [E] int, the end of each expert's rows; rows from ends_E[-1] on are sentinels.
        index_N: [N] int, the x row of each row.
        bias: also return the bias gradient.

    Returns:
        (grad_weight, grad_bias or None), in grad_NO's dtype.
    """
    experts, out_features, in_features = ends_E.shape[0], grad_NO.shape[1], x.shape[1]
    grad_weight = grad_NO.new_empty(experts, out_features, in_features)
    grad_bias = grad_NO.new_empty(experts, out_features) if bias else None
    grid = lambda meta: (experts, triton.cdiv(out_features, meta["BLOCK_O"]), triton.cdiv(in_features, meta["BLOCK_I"]))
    with on_device(grad_NO):
        _grouped_xty_kernel[grid](
            grad_NO, x, ends_E if index_N is None else index_N, ends_E, grad_weight, grad_weight if grad_bias is None else grad_bias,
            out_features, in_features,
            *grad_NO.stride(), *x.stride(), *grad_weight.stride(), *((0, 0) if grad_bias is None else grad_bias.stride()),
            HAS_INDEX=index_N is not None, BIAS=bias, PRECISION=dot_precision(grad_NO.dtype), COMPUTE=compute_type(grad_NO.dtype),
        )
    return grad_weight, grad_bias


def grouped_xty_reference(
    grad_NO: torch.Tensor, x: torch.Tensor, ends_E: torch.Tensor, *, index_N: torch.Tensor | None = None, bias: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`grouped_xty` in torch: one product per expert over its rows."""
    rows_NI = x if index_N is None else x.index_select(0, index_N)
    grad_weight, grad_bias, start = [], [], 0
    for end in ends_E.tolist():
        grad_weight.append(grad_NO[start:end].t() @ rows_NI[start:end])
        grad_bias.append(grad_NO[start:end].sum(0))
        start = end
    return torch.stack(grad_weight), torch.stack(grad_bias) if bias else None
