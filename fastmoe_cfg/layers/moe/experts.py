"""The routed experts: `GroupedExperts` (one grouped GEMM per layer) and `LoopedExperts` (one expert at a time).

Both compute, for every real row n of a `PermutePlan`, weight_n · expert_{e_n}(x_n) with the
same parameters, and exactly zero for sentinel rows (outputs and input gradients), made
by `torch.where` or by writing only the real rows, never by multiplying by 0. Tests compare
them on outputs and gradients. Shape legend in `fastmoe_cfg.layers.moe`.

`GroupedExperts` runs the torch kernels (`grouped_gemm.py`) or the Triton ones (`kernels/`,
`dropless_kernel`): with Triton, layer_1 reads the token rows through the plan's index inside
its tiles (no gathered [N, H] copy) and applies the activation in its epilogue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastmoe_cfg.layers.activations import hidden_activation
from fastmoe_cfg.layers.linear import Linear, local_tensor
from fastmoe_cfg.layers.moe.grouped_gemm import grouped_mm
from fastmoe_cfg.layers.moe.kernels import TORCH_KERNELS, KernelChoice
from fastmoe_cfg.layers.moe.kernels.ops import PLAIN, expert_linear
from fastmoe_cfg.layers.moe.permute import PermutePlan
from fastmoe_cfg.schemas.enums import ActivationType


class GroupedExperts(nn.Module):
    """The routed experts' weights, `layer_1.weight` [E, I or 2I, H] (gate rows first) and `layer_2.weight` [E, H, I]
    (biases [E, 2I] and [E, H] when enabled), run as one grouped GEMM per layer over rows sorted by expert.

    `forward(x, plan)` = `second(first(x, plan), plan)`; the layer calls the two steps apart
    so that `recompute_level` can checkpoint each. The routing weight multiplies the expert's
    input when `weight_on_input` (Llama-4), else the narrower side of layer_2: its input [N, I]
    when I < H (fine-grained experts; the bias is then weighted apart), its output [N, H] otherwise.
    It stays a torch multiply around the kernels, where the router's gradient is one product.

    `kernels` (`dropless_kernel`, chosen at build): the torch grouped GEMMs, or the Triton kernels
    for the inputs `kernels.uses_triton` accepts. With Triton, `first` fuses the gather into layer_1
    and the activation into its epilogue, so what passes from `first` to `second` is the activation's
    output [N, I] instead of layer_1's [N, I or 2I]; layer_1's kernel keeps its input x (the token rows,
    not the gathered ones) and its pre-activation for backward.
    """

    def __init__(
        self,
        layer_1: Linear,
        layer_2: Linear,
        *,
        activation: ActivationType,
        gated: bool,
        limit: float | None = None,
        weight_on_input: bool = False,
        dynamic_shape: bool = False,
        kernels: KernelChoice = TORCH_KERNELS,
    ) -> None:
        super().__init__()
        self.layer_1 = layer_1
        self.layer_2 = layer_2
        self.activation = activation
        self.gated = gated
        self.limit = limit
        self.weight_on_input = weight_on_input
        self.dynamic_shape = dynamic_shape
        self.kernels = kernels

    @property
    def count(self) -> int:
        """The routed experts held here: E, or E / ep with expert parallelism (the weights are then DTensors)."""
        return local_tensor(self.layer_1.weight).shape[0]

    def reset_parameters(self) -> None:
        self.layer_1.reset_parameters()
        self.layer_2.reset_parameters()

    def forward(self, x: torch.Tensor, plan: PermutePlan, *, gathered: bool = False) -> torch.Tensor:
        """Rows [N, H] of the plan's tokens (`gathered`, e.g. after an expert-parallel exchange) or x [T, H] -> [N, H]."""
        return self.second(self.first(x, plan, gathered=gathered), plan)

    def first(self, x: torch.Tensor, plan: PermutePlan, *, gathered: bool = True) -> torch.Tensor:
        """layer_1 on each row (× the routing weight first, with weight_on_input).

        x: the rows [N, H] (`gathered`) or the tokens [T, H], whose rows the plan's token_N picks (inside the
        Triton kernel, or by `plan.gather` before the torch one). Returns layer_1's output [N, I or 2I]; with
        the Triton kernels the activation's output [N, I] (the activation is layer_1's epilogue).
        """
        if self.weight_on_input:
            x, gathered = (x if gathered else plan.gather(x)) * plan.weight_N.unsqueeze(1), True
        if not self.kernels.uses_triton(x):
            return self.linear(x if gathered else plan.gather(x), self.layer_1, plan)
        layer_1 = self.layer_1
        weight_EOH = local_tensor(layer_1.weight)
        bias_EO = None if layer_1.bias is None else local_tensor(layer_1.bias)
        keep = torch.is_grad_enabled() and (x.requires_grad or weight_EOH.requires_grad or (bias_EO is not None and bias_EO.requires_grad))
        a_NI, _ = expert_linear(
            x, weight_EOH, bias_EO, None if gathered else plan.token_N, plan.ends_E, plan.sentinels,
            self.activation.value, self.gated, 0.0 if self.limit is None else self.limit, keep,
        )
        return a_NI

    def second(self, h_NI: torch.Tensor, plan: PermutePlan) -> torch.Tensor:
        """Activation (with the torch kernels: the Triton ones applied it in `first`), layer_2 and the routing weight:
        [N, I or 2I] -> [N, H], sentinel rows exactly zero."""
        triton = self.kernels.uses_triton(h_NI)
        a_NI = h_NI if triton else hidden_activation(h_NI, self.activation, gated=self.gated, limit=self.limit)
        linear = self.triton_linear if triton else self.linear
        weight_N1 = plan.weight_N.unsqueeze(1)
        layer_2 = self.layer_2
        if self.weight_on_input:
            y_NH = linear(a_NI, layer_2, plan)
        elif layer_2.weight.shape[2] < layer_2.weight.shape[1]:  # I < H: weight the narrower input
            y_NH = linear(a_NI * weight_N1, layer_2, plan, bias=False)
            if layer_2.bias is not None:
                y_NH = y_NH + weight_N1 * local_tensor(layer_2.bias).index_select(0, plan.safe_expert_N)
        else:
            y_NH = linear(a_NI, layer_2, plan) * weight_N1
        return torch.where(plan.real_N.unsqueeze(1), y_NH, 0) if plan.sentinels else y_NH

    def linear(self, x_NI: torch.Tensor, layer: Linear, plan: PermutePlan, *, bias: bool = True) -> torch.Tensor:
        """Row n times layer.weight[e_n]ᵀ (+ layer.bias[e_n]): [N, in] -> [N, out]; sentinel rows are not computed."""
        y_NO = grouped_mm(x_NI, local_tensor(layer.weight), plan.ends_E, 0 if self.dynamic_shape else plan.max_rows, plan.sentinels)
        if bias and layer.bias is not None:
            y_NO = y_NO + local_tensor(layer.bias).index_select(0, plan.safe_expert_N)
        return y_NO

    def triton_linear(self, x_NI: torch.Tensor, layer: Linear, plan: PermutePlan, *, bias: bool = True) -> torch.Tensor:
        """`linear` with the Triton gather-GEMM (the bias added in its epilogue): [N, in] -> [N, out], sentinel rows zero."""
        bias_EO = local_tensor(layer.bias) if bias and layer.bias is not None else None
        y_NO, _ = expert_linear(x_NI, local_tensor(layer.weight), bias_EO, None, plan.ends_E, plan.sentinels, PLAIN, False, 0.0, False)
        return y_NO


class LoopedExperts(GroupedExperts):
    """The same experts, one `F.linear` per expert on its rows (a reference for the grouped path; it breaks compiled graphs)."""

    def linear(self, x_NI: torch.Tensor, layer: Linear, plan: PermutePlan, *, bias: bool = True) -> torch.Tensor:
        y_NO = x_NI.new_zeros(x_NI.shape[0], layer.weight.shape[1])
        for expert in range(self.count):
            # Experts without rows still run (on 0 rows), so the output stays in the autograd graph.
            rows_M = torch.nonzero(plan.expert_N == expert).squeeze(1)
            expert_bias = layer.bias[expert] if bias and layer.bias is not None else None
            y_NO = y_NO.index_copy(0, rows_M, F.linear(x_NI.index_select(0, rows_M), layer.weight[expert], expert_bias))
        return y_NO
