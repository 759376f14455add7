"""The gather-GEMM: one expert linear over rows sorted by expert, reading its input rows by index inside the tile.

For each real row n (expert e_n, rows of expert e from ends[e-1] to ends[e] - 1, as in a
`PermutePlan`):

    h[n] = x[src(n)] · weight[e_n]ᵀ (+ bias[e_n])      src(n) = index[n], or n (rows already gathered)
    y[dst(n)] = activation(h[n])                      dst(n) = out_index[n] (scattered), or n (grouped)

Gathering inside the tile (ScatterMoE's scatter2scatter) means the [N, H] copy of the token rows
is never written: layer_1 reads x [T, H] and the plan's row -> token index. The activation
(gated or not, every `ActivationType`) is the epilogue; `keep_hidden` also writes h, which
backward needs. Sentinel rows (from ends[-1] on) are never computed; their output rows are zero.

The block table. Each program takes BLOCK_M consecutive rows of one expert: expert e owns
⌈count_e / BLOCK_M⌉ blocks, numbered in expert order, and the last block of an expert stops at its
end (the index list is padded, never the data). A program finds its (expert, first row) from
ends[] (`row_block`, from the counts of the sorted expert ids), so the table costs no launch and
BLOCK_M can be autotuned. The grid has ⌈N / BLOCK_M⌉ + E programs along the rows, a static bound
on Σ_e ⌈count_e / BLOCK_M⌉; programs past the last block do nothing.

`gather_gemm_reference` computes the same in torch; `block_table_reference` lists the table.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastmoe_cfg.layers.activations import hidden_activation
from fastmoe_cfg.layers.moe.kernels.activation import activate, compute_type
from fastmoe_cfg.layers.moe.kernels.tuning import add, autotune_configs, block_experts, dot_precision, on_device
from fastmoe_cfg.schemas.enums import ActivationType

GPU_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
]
INTERPRETER_CONFIG = triton.Config({"BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=1)  # large tiles: the interpreter runs each program in Python


@triton.jit
def row_block(block, ends_ptr, experts, BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr):
    """Entry `block` of the block table: (expert, first row, end row); expert = `experts` past the last block.

    The sums are tl.sum and tl.cumsum written out (see `tuning`): Σ over the experts of a masked vector picks one value.
    """
    e = tl.arange(0, BLOCK_E)
    valid = e < experts
    ends = tl.load(ends_ptr + e, mask=valid, other=0).to(tl.int64)
    starts = tl.load(ends_ptr + e - 1, mask=valid & (e > 0), other=0).to(tl.int64)
    blocks = (ends - starts + BLOCK_M - 1) // BLOCK_M
    block_ends = tl.associative_scan(blocks, 0, add)
    expert = tl.reduce(tl.where(valid & (block_ends <= block), 1, 0), 0, add)
    this = e == expert
    first_block = tl.reduce(tl.where(this, block_ends - blocks, 0), 0, add)
    start = tl.reduce(tl.where(this, starts, 0), 0, add) + (block - first_block) * BLOCK_M
    end = tl.reduce(tl.where(this, ends, 0), 0, add)
    return expert, start, end


@triton.autotune(configs=autotune_configs(GPU_CONFIGS, INTERPRETER_CONFIG), key=["K", "COLS"])
@triton.jit
def _gather_gemm_kernel(
    x_ptr, weight_ptr, bias_ptr, index_ptr, out_index_ptr, ends_ptr, y_ptr, hidden_ptr,
    experts, K, COLS, limit,
    stride_xm, stride_xk, stride_we, stride_wn, stride_wk, stride_be, stride_bn, stride_ym, stride_yn, stride_hm, stride_hn,
    HAS_BIAS: tl.constexpr, HAS_INDEX: tl.constexpr, HAS_OUT_INDEX: tl.constexpr, KEEP_HIDDEN: tl.constexpr,
    GATED: tl.constexpr, ACTIVATION: tl.constexpr, PRECISION: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_E: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    expert, start, end = row_block(tl.program_id(0), ends_ptr, experts, BLOCK_M, BLOCK_E)
    if expert < experts:
        rows = start + tl.arange(0, BLOCK_M).to(tl.int64)
        row_mask = rows < end
        source = rows
        if HAS_INDEX:
            source = tl.load(index_ptr + rows, mask=row_mask, other=0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        col_mask = cols < COLS
        weight_ptr += expert.to(tl.int64) * stride_we
        acc = tl.full((BLOCK_M, BLOCK_N), 0, dtype=COMPUTE)
        acc_up = tl.full((BLOCK_M, BLOCK_N), 0, dtype=COMPUTE)
        for k0 in range(0, K, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_mask = ks < K
            x = tl.load(x_ptr + source[:, None] * stride_xm + ks[None, :] * stride_xk, mask=row_mask[:, None] & k_mask[None, :], other=0)
            w_mask = k_mask[:, None] & col_mask[None, :]
            w = tl.load(weight_ptr + cols[None, :] * stride_wn + ks[:, None] * stride_wk, mask=w_mask, other=0)
            acc = tl.dot(x, w, acc, input_precision=PRECISION, out_dtype=COMPUTE)
            if GATED:  # the up rows of the same columns: COLS further in layer_1's [2I, H] weight
                w_up = tl.load(weight_ptr + (cols + COLS)[None, :] * stride_wn + ks[:, None] * stride_wk, mask=w_mask, other=0)
                acc_up = tl.dot(x, w_up, acc_up, input_precision=PRECISION, out_dtype=COMPUTE)
        if HAS_BIAS:
            bias_ptr += expert.to(tl.int64) * stride_be
            acc += tl.load(bias_ptr + cols * stride_bn, mask=col_mask, other=0).to(COMPUTE)[None, :]
            if GATED:
                acc_up += tl.load(bias_ptr + (cols + COLS) * stride_bn, mask=col_mask, other=0).to(COMPUTE)[None, :]
        out_mask = row_mask[:, None] & col_mask[None, :]
        if KEEP_HIDDEN:
            hidden_type = hidden_ptr.dtype.element_ty
            tl.store(hidden_ptr + rows[:, None] * stride_hm + cols[None, :] * stride_hn, acc.to(hidden_type), mask=out_mask)
            if GATED:
                hidden_up = hidden_ptr + rows[:, None] * stride_hm + (cols + COLS)[None, :] * stride_hn
                tl.store(hidden_up, acc_up.to(hidden_type), mask=out_mask)
        out = activate(acc, acc_up, limit, ACTIVATION, GATED)
        destination = rows
        if HAS_OUT_INDEX:
            destination = tl.load(out_index_ptr + rows, mask=row_mask, other=0).to(tl.int64)
        y = y_ptr + destination[:, None] * stride_ym + cols[None, :] * stride_yn
        tl.store(y, out.to(y_ptr.dtype.element_ty), mask=out_mask)


def gather_gemm(
    x: torch.Tensor,
    weight_EOI: torch.Tensor,
    ends_E: torch.Tensor,
    *,
    bias_EO: torch.Tensor | None = None,
    index_N: torch.Tensor | None = None,
    out_index_N: torch.Tensor | None = None,
    out_rows: int | None = None,
    activation: str = "identity",
    gated: bool = False,
    limit: float = 0.0,
    keep_hidden: bool = False,
    sentinels: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The expert linear of the rows sorted by expert, with the gather, the bias and the activation fused.

    Args:
        x: [T, I] token rows read through `index_N`, or [N, I] the rows themselves (index_N None).
        weight_EOI: [E, O, I] (any strides: a transposed view serves the input gradient).
        ends_E: [E] int, the end of each expert's rows; rows from ends_E[-1] on are sentinels.
        bias_EO: [E, O], added before the activation.
        index_N: [N] int, the x row of each row.
        out_index_N: [N] int, where each row's output goes (scattered; distinct), in an output of `out_rows` rows.
        activation: an `ActivationType` value ("identity" and not gated: a plain linear).
        gated: the first O/2 rows of the weight are the gate, the next O/2 the up projection.
        limit: gpt_oss_glu's clamp.
        keep_hidden: also return h [N, O], the output before the activation (for backward).
        sentinels: whether rows past ends_E[-1] may exist (False: every row is real, the outputs need no zeroing).

    Returns:
        (y, h): y [N or out_rows, O or O/2] in x's dtype, rows not written zero; h or None.
    """
    if x.dtype != weight_EOI.dtype or (bias_EO is not None and bias_EO.dtype != x.dtype):
        raise TypeError(f"the Triton expert linear needs one dtype: input {x.dtype}, weight {weight_EOI.dtype}" + (
            "" if bias_EO is None else f", bias {bias_EO.dtype}"
        ))
    rows = x.shape[0] if index_N is None else index_N.shape[0]
    experts, out_features, in_features = weight_EOI.shape
    cols = out_features // 2 if gated else out_features
    new = x.new_zeros if sentinels or out_index_N is not None else x.new_empty
    y = new(rows if out_index_N is None else out_rows, cols)
    hidden = new(rows, out_features) if keep_hidden else None
    if rows == 0:
        return y, hidden
    placeholder = ends_E  # a pointer for the arguments a variant does not read
    bias_strides = (0, 0) if bias_EO is None else bias_EO.stride()
    hidden_strides = (0, 0) if hidden is None else hidden.stride()
    grid = lambda meta: (triton.cdiv(rows, meta["BLOCK_M"]) + experts, triton.cdiv(cols, meta["BLOCK_N"]))
    with on_device(x):
        _gather_gemm_kernel[grid](
            x, weight_EOI, placeholder if bias_EO is None else bias_EO, placeholder if index_N is None else index_N,
            placeholder if out_index_N is None else out_index_N, ends_E, y, placeholder if hidden is None else hidden,
            experts, in_features, cols, float(limit),
            *x.stride(), *weight_EOI.stride(), *bias_strides, *y.stride(), *hidden_strides,
            HAS_BIAS=bias_EO is not None, HAS_INDEX=index_N is not None, HAS_OUT_INDEX=out_index_N is not None,
            KEEP_HIDDEN=keep_hidden, GATED=gated, ACTIVATION=activation, PRECISION=dot_precision(x.dtype),
            COMPUTE=compute_type(x.dtype), BLOCK_E=block_experts(experts),
        )
    return y, hidden


def expert_of_rows(ends_E: torch.Tensor, rows: int) -> torch.Tensor:
    """[N] each row's expert from the ends of the expert's rows; E for a sentinel row."""
    return torch.searchsorted(ends_E, torch.arange(rows, device=ends_E.device), right=True)


def gather_gemm_reference(
    x: torch.Tensor,
    weight_EOI: torch.Tensor,
    ends_E: torch.Tensor,
    *,
    bias_EO: torch.Tensor | None = None,
    index_N: torch.Tensor | None = None,
    out_index_N: torch.Tensor | None = None,
    out_rows: int | None = None,
    activation: str = "identity",
    gated: bool = False,
    limit: float = 0.0,
    keep_hidden: bool = False,
    sentinels: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`gather_gemm` in torch: one batched product of each row with its expert's weight."""
    rows_NI = x if index_N is None else x.index_select(0, index_N)
    experts = weight_EOI.shape[0]
    expert_N = expert_of_rows(ends_E, rows_NI.shape[0])
    real_N1 = (expert_N < experts).unsqueeze(1)
    safe_N = expert_N.clamp(max=experts - 1)
    hidden_NO = torch.einsum("ni,noi->no", rows_NI, weight_EOI.index_select(0, safe_N))
    if bias_EO is not None:
        hidden_NO = hidden_NO + bias_EO.index_select(0, safe_N)
    hidden_NO = torch.where(real_N1, hidden_NO, 0)
    out_NI = torch.where(real_N1, hidden_activation(hidden_NO, ActivationType(activation), gated=gated, limit=limit), 0)
    if out_index_N is not None:
        out_NI = out_NI.new_zeros(out_rows, out_NI.shape[1]).index_copy(0, out_index_N, out_NI)
    return out_NI, hidden_NO if keep_hidden else None


def block_table_reference(ends_E: torch.Tensor, block_m: int) -> list[tuple[int, int, int]]:
    """The block table as a list: (expert, first row, end row) of each block, in expert order."""
    table, start = [], 0
    for expert, end in enumerate(ends_E.tolist()):
        table += [(expert, row, end) for row in range(start, end, block_m)]
        start = end
    return table


@triton.jit
def _block_table_kernel(ends_ptr, out_ptr, experts, BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr):
    expert, start, end = row_block(tl.program_id(0), ends_ptr, experts, BLOCK_M, BLOCK_E)
    tl.store(out_ptr + 3 * tl.program_id(0), expert)
    tl.store(out_ptr + 3 * tl.program_id(0) + 1, start)
    tl.store(out_ptr + 3 * tl.program_id(0) + 2, end)


def block_table(ends_E: torch.Tensor, rows: int, block_m: int) -> list[tuple[int, int, int]]:
    """The table the kernel's programs compute (`row_block`), for tests: its entries up to the first past the end."""
    experts = ends_E.shape[0]
    programs = triton.cdiv(rows, block_m) + experts
    out = torch.full((programs, 3), -1, dtype=torch.int64, device=ends_E.device)
    with on_device(ends_E):
        _block_table_kernel[(programs,)](ends_E, out, experts, BLOCK_M=block_m, BLOCK_E=block_experts(experts))
    return [entry for entry in map(tuple, out.tolist()) if entry[0] < experts]
