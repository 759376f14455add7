"""Expert execution: `looped` (one expert at a time) and `dropless` (sorted rows, grouped GEMM).

Both compute, for every token t, Σ_k weight_tk · expert_{e_tk}(x_t), with the same
parameters; tests compare them on outputs and gradients.
Shape legend: T tokens, H hidden, I expert intermediate (2·I when gated), E routed
experts, K experts per token, N = T·K routed rows, M rows of one expert, C rows per expert
after padding.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from fastmoe_cfg.layers.activations import hidden_activation
from fastmoe_cfg.layers.linear import Linear
from fastmoe_cfg.layers.recompute import Step, expert_mlp
from fastmoe_cfg.schemas.enums import ActivationType, MLPRecomputeLevel


class Experts(nn.Module):
    """The routed experts' weights: `layer_1.weight` [E, I or 2·I, H] (gate rows first), `layer_2.weight` [E, H, I]."""

    def __init__(
        self, layer_1: Linear, layer_2: Linear, *, activation: ActivationType, gated: bool, limit: float | None = None
    ) -> None:
        super().__init__()
        self.layer_1 = layer_1
        self.layer_2 = layer_2
        self.activation = activation
        self.gated = gated
        self.limit = limit

    @property
    def count(self) -> int:
        return self.layer_1.weight.shape[0]

    def activate(self, h_NI: torch.Tensor) -> torch.Tensor:
        return hidden_activation(h_NI, self.activation, gated=self.gated, limit=self.limit)


def looped(
    x_TH: torch.Tensor,
    weights_TK: torch.Tensor,
    experts_TK: torch.Tensor,
    *,
    experts: Experts,
    prepare: Step,
    level: MLPRecomputeLevel,
    weight_on_input: bool = False,
) -> torch.Tensor:
    """For each expert: gather its tokens, run its MLP, scale by the routing weight, add into the output.

    An entry of `experts_TK` equal to E (the expert count) is a dropped assignment: it is skipped.
    `weight_on_input` scales the expert's input instead of its output.
    """
    out_TH = x_TH.new_zeros(x_TH.shape)
    layer_1, layer_2 = experts.layer_1, experts.layer_2
    for expert in range(experts.count):
        tokens_M, slots_M = torch.nonzero(experts_TK == expert, as_tuple=True)
        if tokens_M.numel() == 0:
            continue
        weight_M1 = weights_TK[tokens_M, slots_M].unsqueeze(1)

        def gather(t: torch.Tensor, tokens_M: torch.Tensor = tokens_M, weight_M1: torch.Tensor = weight_M1) -> torch.Tensor:
            x_MH = prepare(t.index_select(0, tokens_M))
            return x_MH * weight_M1 if weight_on_input else x_MH

        def first(x_MH: torch.Tensor, expert: int = expert) -> torch.Tensor:
            return F.linear(x_MH, layer_1.weight[expert], None if layer_1.bias is None else layer_1.bias[expert])

        def finish(h_MI: torch.Tensor, expert: int = expert) -> torch.Tensor:
            return F.linear(experts.activate(h_MI), layer_2.weight[expert], None if layer_2.bias is None else layer_2.bias[expert])

        y_MH = expert_mlp(x_TH, prepare=gather, layer_1=first, finish=finish, level=level)
        out_TH.index_add_(0, tokens_M, y_MH if weight_on_input else y_MH * weight_M1)
    return out_TH


def dropless(
    x_TH: torch.Tensor,
    weights_TK: torch.Tensor,
    experts_TK: torch.Tensor,
    *,
    experts: Experts,
    prepare: Step,
    level: MLPRecomputeLevel,
    dynamic_shape: bool,
    weight_on_input: bool = False,
    capacity: int | None = None,
) -> torch.Tensor:
    """Sort the T·K (token, expert) rows by expert, run each layer as one grouped GEMM, scatter-add back.

    The GEMM is `torch._grouped_mm` where it runs (float32, bfloat16, float16), otherwise a
    batched matmul over rows padded per expert to C rows: C = T (or `capacity`, when
    given), the worst case, or with `dynamic_shape` the largest actual count (less memory,
    one host sync). With a `capacity`, entries of `experts_TK` equal to E are dropped
    assignments: they sort last and are cut off (one host sync), never computed.
    `weight_on_input` scales the expert's input instead of its output.
    """
    tokens, k = experts_TK.shape
    flat_N = experts_TK.reshape(-1)
    order_N = flat_N.argsort(stable=True)
    counts_E = torch.bincount(flat_N, minlength=experts.count + 1)[: experts.count]
    if capacity is not None:
        order_N = order_N[: int(counts_E.sum())]
    token_of_row_N = order_N // k
    max_rows = tokens if capacity is None else min(tokens, capacity)
    groups = _Groups(flat_N[order_N], counts_E, max_rows, dynamic_shape)
    layer_1, layer_2 = experts.layer_1, experts.layer_2
    weight_N1 = weights_TK.reshape(-1)[order_N].unsqueeze(1)
    # The routing weight scales the narrower side of layer_2: its input [N, I] when I < H (fine-grained
    # experts; then the bias is scaled apart), else its output [N, H]. Same product, fewer multiplies.
    scale_input = layer_2.weight.shape[2] < layer_2.weight.shape[1]

    def gather(t: torch.Tensor) -> torch.Tensor:
        x_NH = prepare(t.index_select(0, token_of_row_N))
        return x_NH * weight_N1 if weight_on_input else x_NH

    def finish(h_NI: torch.Tensor) -> torch.Tensor:
        hidden_NI = experts.activate(h_NI)
        if weight_on_input:
            return groups.linear(hidden_NI, layer_2.weight, layer_2.bias)
        if not scale_input:
            return groups.linear(hidden_NI, layer_2.weight, layer_2.bias) * weight_N1
        y_NH = groups.linear(hidden_NI * weight_N1, layer_2.weight, None)
        return y_NH if layer_2.bias is None else y_NH + weight_N1 * layer_2.bias.index_select(0, groups.expert_N)

    y_NH = expert_mlp(
        x_TH,
        prepare=gather,
        layer_1=lambda x_NH: groups.linear(x_NH, layer_1.weight, layer_1.bias),
        finish=finish,
        level=level,
    )
    return x_TH.new_zeros(x_TH.shape).index_add_(0, token_of_row_N, y_NH)


class _Groups:
    """Rows sorted by expert: `expert_N` is each row's expert, `counts_E` the rows per expert."""

    def __init__(self, expert_N: torch.Tensor, counts_E: torch.Tensor, max_rows: int, dynamic_shape: bool) -> None:
        self.expert_N = expert_N
        self.counts_E = counts_E
        self.ends_E = counts_E.cumsum(0)
        self.max_rows = max_rows
        self.dynamic_shape = dynamic_shape

    def linear(self, x_NI: torch.Tensor, weight_EOI: torch.Tensor, bias_EO: torch.Tensor | None) -> torch.Tensor:
        """Row n times weight[expert_N[n]]ᵀ (+ bias[expert_N[n]]). [N, in] -> [N, out]."""
        # grouped_mm needs rows whose byte strides are multiples of 16.
        aligned = (x_NI.shape[1] * x_NI.element_size()) % 16 == 0 and (weight_EOI.shape[1] * x_NI.element_size()) % 16 == 0
        if aligned and _grouped_mm_runs(x_NI.device.type, x_NI.dtype):
            y_NO = _ContiguousGrad.apply(torch._grouped_mm(x_NI, weight_EOI.transpose(1, 2), offs=self.ends_E.to(torch.int32)))
        else:
            y_NO = self._padded_linear(x_NI, weight_EOI)
        return y_NO if bias_EO is None else y_NO + bias_EO.index_select(0, self.expert_N)

    def _padded_linear(self, x_NI: torch.Tensor, weight_EOI: torch.Tensor) -> torch.Tensor:
        rows = int(self.counts_E.max()) if self.dynamic_shape and self.counts_E.numel() else self.max_rows
        position_N = torch.arange(self.expert_N.numel(), device=x_NI.device) - (self.ends_E - self.counts_E)[self.expert_N]
        padded_ECI = x_NI.new_zeros(weight_EOI.shape[0], rows, x_NI.shape[1]).index_put((self.expert_N, position_N), x_NI)
        return torch.bmm(padded_ECI, weight_EOI.transpose(1, 2))[self.expert_N, position_N]


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous (grouped_mm's backward needs it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


@functools.cache
def _grouped_mm_runs(device_type: str, dtype: torch.dtype) -> bool:
    """Whether torch._grouped_mm runs here for this dtype (it needs float32/bfloat16/float16, and CUDA sm90+ on GPUs)."""
    if not hasattr(torch, "_grouped_mm") or dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return False
    try:
        a = torch.zeros(4, 8, device=device_type, dtype=dtype)
        b = torch.zeros(2, 8, 8, device=device_type, dtype=dtype)
        torch._grouped_mm(a, b, offs=torch.tensor([2, 4], device=device_type, dtype=torch.int32))
    except (RuntimeError, NotImplementedError):
        return False
    return True
