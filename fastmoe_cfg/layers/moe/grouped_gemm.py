"""The grouped GEMM of the dropless experts, as a torch custom op (`fastmoe_cfg::grouped_mm`).

This module is the one place that calls `torch._grouped_mm` (a private op). Wrapping it in
`torch.library.custom_op` with a fake implementation makes it opaque to `torch.compile` in
every dtype (the op's own fake-tensor rule accepts only bfloat16) and gives it an explicit
backward. Where `torch._grouped_mm` does not run (float64, rows not 16-byte aligned, CUDA
before sm90) the same op runs a batched matmul over rows padded per expert.

Rows are sorted by expert: expert e owns rows ends[e-1] .. ends[e] - 1 (shape legend in
`fastmoe_cfg.layers.moe`). Rows from ends[-1] on are sentinels: `torch._grouped_mm` leaves
them uninitialised, so the op writes zeros there, in the output and in the input gradient.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def grouped_mm_runs(device_type: str, dtype: torch.dtype) -> bool:
    """Whether torch._grouped_mm runs here for this dtype (float32/bfloat16/float16; on CUDA, sm90 and newer)."""
    if not hasattr(torch, "_grouped_mm") or dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return False
    try:
        a = torch.zeros(4, 8, device=device_type, dtype=dtype)
        b = torch.zeros(2, 8, 8, device=device_type, dtype=dtype)
        torch._grouped_mm(a, b, offs=torch.tensor([2, 4], device=device_type, dtype=torch.int32))
    except (RuntimeError, NotImplementedError):
        return False
    return True


def _native(x: torch.Tensor, out_features: int, in_features: int) -> bool:
    """Whether torch._grouped_mm runs for x and an [E, O, I] weight (it needs rows of a multiple of 16 bytes)."""
    aligned = all(size * x.element_size() % 16 == 0 for size in (out_features, in_features))
    return aligned and grouped_mm_runs(x.device.type, x.dtype)


def _zero_sentinels(y_N: torch.Tensor, ends_E: torch.Tensor) -> torch.Tensor:
    real_N = torch.arange(y_N.shape[0], device=y_N.device) < ends_E[-1:]
    return torch.where(real_N.view(-1, *([1] * (y_N.dim() - 1))), y_N, 0)


class _Padded:
    """The real rows of each expert in a zero-padded [E, C, ...] block, C = `rows` or the largest count.

    `real`: the number of real rows when known (every row, without sentinels); else it is read
    from `ends_E`, a host sync (the op is opaque to the compiler, so this breaks no graph).
    """

    def __init__(self, ends_E: torch.Tensor, rows: int, real: int | None) -> None:
        counts_E = torch.diff(ends_E, prepend=ends_E.new_zeros(1))
        self.real = real if real is not None else (int(ends_E[-1]) if ends_E.numel() else 0)
        self.experts = ends_E.numel()
        self.expert_R = torch.repeat_interleave(torch.arange(self.experts, device=ends_E.device), counts_E, output_size=self.real)
        self.position_R = torch.arange(self.real, device=ends_E.device) - (ends_E - counts_E)[self.expert_R]
        self.rows = rows if rows > 0 else (int(counts_E.max()) if self.experts else 0)

    def pad(self, x_N: torch.Tensor) -> torch.Tensor:
        block = x_N.new_zeros(self.experts, self.rows, x_N.shape[1])
        return block.index_put((self.expert_R, self.position_R), x_N[: self.real])

    def unpad(self, block_ECO: torch.Tensor, rows: int) -> torch.Tensor:
        y_NO = block_ECO.new_zeros(rows, block_ECO.shape[2])
        y_NO[: self.real] = block_ECO[self.expert_R, self.position_R]
        return y_NO


@torch.library.custom_op("fastmoe_cfg::grouped_mm", mutates_args=())
def grouped_mm(x_NI: torch.Tensor, weight_EOI: torch.Tensor, ends_E: torch.Tensor, rows: int, sentinels: bool) -> torch.Tensor:
    """y[n] = x[n] · weight[e]ᵀ for the rows n of expert e; [N, I] -> [N, O], sentinel rows zero.

    `rows`: C of the padded fallback (the most rows an expert can have; 0: the largest count, one host sync).
    `sentinels`: whether rows past ends[-1] may exist (False: ends[-1] = N, nothing to zero).
    """
    if x_NI.shape[0] == 0:  # no rows (an expert-parallel rank that receives none): nothing to multiply
        return x_NI.new_zeros(0, weight_EOI.shape[1])
    if _native(x_NI, *weight_EOI.shape[1:]):
        y_NO = torch._grouped_mm(x_NI.contiguous(), weight_EOI.transpose(1, 2), offs=ends_E.to(torch.int32))  # 16-byte rows
        return _zero_sentinels(y_NO, ends_E) if sentinels else y_NO
    padded = _Padded(ends_E, rows, None if sentinels else x_NI.shape[0])
    return padded.unpad(torch.bmm(padded.pad(x_NI), weight_EOI.transpose(1, 2)), x_NI.shape[0])


@grouped_mm.register_fake
def _(x_NI, weight_EOI, ends_E, rows, sentinels):
    return x_NI.new_empty(x_NI.shape[0], weight_EOI.shape[1])


@torch.library.custom_op("fastmoe_cfg::grouped_mm_weight_grad", mutates_args=())
def grouped_mm_weight_grad(grad_NO: torch.Tensor, x_NI: torch.Tensor, ends_E: torch.Tensor, rows: int, sentinels: bool) -> torch.Tensor:
    """The weight gradient of `grouped_mm`: [E, O, I], Σ over the rows n of expert e of grad[n]ᵀ x[n].

    It has no derivative of its own: a second derivative through the expert weights is not supported.
    """
    if x_NI.shape[0] == 0:
        return grad_NO.new_zeros(ends_E.shape[0], grad_NO.shape[1], x_NI.shape[1])
    if _native(grad_NO, grad_NO.shape[1], x_NI.shape[1]):
        return torch._grouped_mm(grad_NO.t(), x_NI.contiguous(), offs=ends_E.to(torch.int32))
    padded = _Padded(ends_E, rows, None if sentinels else x_NI.shape[0])
    return torch.bmm(padded.pad(grad_NO).transpose(1, 2), padded.pad(x_NI))


@grouped_mm_weight_grad.register_fake
def _(grad_NO, x_NI, ends_E, rows, sentinels):
    return grad_NO.new_empty(ends_E.shape[0], grad_NO.shape[1], x_NI.shape[1])


def _setup_context(ctx, inputs, output) -> None:
    x_NI, weight_EOI, ends_E, rows, sentinels = inputs
    ctx.save_for_backward(x_NI, weight_EOI, ends_E)
    ctx.rows, ctx.sentinels = rows, sentinels


def _backward(ctx, grad_NO: torch.Tensor):
    x_NI, weight_EOI, ends_E = ctx.saved_tensors
    grad_NO = grad_NO.contiguous()
    grad_x = grad_weight = None
    if ctx.needs_input_grad[0]:
        grad_x = grouped_mm(grad_NO, weight_EOI.transpose(1, 2), ends_E, ctx.rows, ctx.sentinels)
    if ctx.needs_input_grad[1]:
        grad_weight = grouped_mm_weight_grad(grad_NO, x_NI, ends_E, ctx.rows, ctx.sentinels)
    return grad_x, grad_weight, None, None, None


grouped_mm.register_autograd(_backward, setup_context=_setup_context)
