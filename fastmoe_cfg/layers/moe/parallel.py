"""Expert parallelism: the routed experts spread over the ranks of a 1-D `DeviceMesh`, rows exchanged with all-to-all.

Shape legend in `fastmoe_cfg.layers.moe`; here N is this rank's routed rows (its tokens' real
assignments, sentinels left out), M the rows it receives, E_l = E / ep its local experts.
Rank r holds experts r·E_l … (r+1)·E_l − 1, contiguous, so the rows of a `PermutePlan` (sorted by
expert) are already grouped by destination rank:

    dispatch: counts per (destination, local expert) -> all_to_all of the counts -> all_to_all of the
              rows [N, H] and their weights with variable splits -> rows sorted by local expert [M, H]
    combine:  the reverse all_to_all -> [N, H] in the plan's order (sentinel rows zero)

Both exchanges are autograd Functions over `torch.distributed.all_to_all_single` (the backward
of one is the other, with the splits swapped). The split sizes are host integers: each exchange
syncs with the host, and `torch.compile` breaks the graph there (`.tolist()` of the counts).

Reductions (`TokenGroup`): the losses and statistics of an expert-parallel layer need totals over
all the ranks that hold different tokens of one batch: the expert-parallel group, and with a 2-D
(dp, ep) mesh also `dp_mesh`, the other dimension (the ranks that hold the same experts and other
tokens): the totals are summed over the EP group, then over the DP group, i.e. over dp × ep ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from fastmoe_cfg.layers.moe.permute import PermutePlan


def check_mesh(mesh, routed_experts: int | None, *, name: str = "ep_mesh") -> None:
    """Errors before any collective: a 1-D mesh, whose size divides the routed experts (when given)."""
    from torch.distributed.device_mesh import DeviceMesh

    if not isinstance(mesh, DeviceMesh):
        raise TypeError(f"{name} must be a torch.distributed.device_mesh.DeviceMesh, got {type(mesh).__name__}")
    if mesh.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one mesh dimension: mesh['{name[:2]}']), got a {mesh.ndim}-D mesh of shape {tuple(mesh.shape)}"
        )
    if routed_experts is None:
        return
    size = mesh.size()
    if size > routed_experts:
        raise ValueError(f"{name} has {size} ranks but the layer has only {routed_experts} routed experts: at most one rank per expert")
    if routed_experts % size:
        raise ValueError(
            f"{name} has {size} ranks, which must divide the {routed_experts} routed experts (experts - shared_experts)"
        )


class _AllToAll(torch.autograd.Function):
    """rows [sum(send), ...] -> [sum(receive), ...]; backward sends the gradients back (splits swapped)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, send: list[int], receive: list[int], group, meter) -> torch.Tensor:
        ctx.send, ctx.receive, ctx.group, ctx.meter = send, receive, group, meter
        out = rows.new_empty(sum(receive), *rows.shape[1:])
        dist.all_to_all_single(out, rows.contiguous(), output_split_sizes=receive, input_split_sizes=send, group=group)
        if meter is not None:
            meter.count(send, rows)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        out = grad.new_empty(sum(ctx.send), *grad.shape[1:])
        dist.all_to_all_single(out, grad.contiguous(), output_split_sizes=ctx.send, input_split_sizes=ctx.receive, group=ctx.group)
        if ctx.meter is not None:
            ctx.meter.count(ctx.receive, grad)
        return out, None, None, None, None


def all_to_all(rows: torch.Tensor, send: list[int], receive: list[int], group, meter=None) -> torch.Tensor:
    """Autograd-aware all-to-all of rows with variable splits (`send[r]` rows to rank r, `receive[r]` from it);
    `meter.count(send, rows)` is called for each exchange, forward and backward."""
    return _AllToAll.apply(rows, send, receive, group, meter)


@dataclass(frozen=True)
class Exchange:
    """What `combine` needs to send the expert outputs back.

    Attributes:
        send: rows sent to each rank (this rank's real rows, in plan order, grouped by destination).
        receive: rows received from each rank.
        order_M: [M] the received rows sorted by local expert (stable: by source rank, then source order).
        rows: N, this rank's rows in the plan (sentinels included), for the zero padding of combine.
    """

    send: list[int]
    receive: list[int]
    order_M: torch.Tensor
    rows: int


class ExpertParallel:
    """The expert-parallel group of a layer: rank r of `mesh` holds routed experts r·E_l … (r+1)·E_l − 1."""

    def __init__(self, mesh, routed_experts: int, dp_mesh=None) -> None:
        check_mesh(mesh, routed_experts)
        self.group = mesh.get_group()
        if dp_mesh is not None:
            check_mesh(dp_mesh, None, name="dp_mesh")
            shared = set(dp_mesh.mesh.flatten().tolist()) & set(mesh.mesh.flatten().tolist())
            if shared != {dist.get_rank()}:
                raise ValueError(
                    f"dp_mesh must be the other dimension of a (dp, ep) mesh, meeting ep_mesh in this rank only; it shares "
                    f"ranks {sorted(shared)} with ep_mesh, whose sums would count them twice"
                )
        self.size = mesh.size()
        self.rank = mesh.get_local_rank()
        self.local_experts = routed_experts // self.size
        self.tokens = TokenGroup(self.group, *([] if dp_mesh is None else [dp_mesh.get_group()]))
        self.bytes_sent = 0  # to other ranks, by the row exchanges (forward and backward), since construction

    def count(self, send: list[int], rows: torch.Tensor) -> None:
        """Add the bytes of `rows` sent to the other ranks (`send[r]` rows to rank r) to `bytes_sent`."""
        row_bytes = rows[0].numel() * rows.element_size() if rows.shape[0] else 0
        self.bytes_sent += (sum(send) - send[self.rank]) * row_bytes

    def dispatch(self, x_TH: torch.Tensor, plan: PermutePlan) -> tuple[torch.Tensor, PermutePlan, Exchange]:
        """This rank's tokens [T, H] and plan -> the rows of this rank's experts from every rank, sorted by local
        expert [M, H], with a plan for `GroupedExperts.forward(..., gathered=True)` (weights included)."""
        size, local = self.size, self.local_experts
        counts_RL = plan.counts_E.view(size, local)  # [destination, its local expert]
        received_RL = torch.empty_like(counts_RL)
        dist.all_to_all_single(received_RL, counts_RL.contiguous(), group=self.group)
        send = counts_RL.sum(dim=1).tolist()
        receive = received_RL.sum(dim=1).tolist()
        real = sum(send)
        rows_NH = x_TH.index_select(0, plan.token_N[:real])  # the real rows only: sentinels are not sent
        payload_NX = torch.cat([rows_NH, plan.weight_N[:real].unsqueeze(1).to(rows_NH.dtype)], dim=1)
        received_MX = all_to_all(payload_NX, send, receive, self.group, self)
        # Each received row's local expert: source-major blocks of (expert, count).
        expert_M = torch.repeat_interleave(
            torch.arange(local, device=rows_NH.device).repeat(size), received_RL.reshape(-1), output_size=sum(receive)
        )
        order_M = expert_M.argsort(stable=True)
        sorted_MX = received_MX.index_select(0, order_M)
        counts_L = received_RL.sum(dim=0)
        local_plan = PermutePlan(
            token_N=torch.arange(sorted_MX.shape[0], device=rows_NH.device),
            expert_N=expert_M.index_select(0, order_M),
            weight_N=sorted_MX[:, -1],
            counts_E=counts_L,
            ends_E=counts_L.cumsum(0),
            experts=local,
            tokens=sorted_MX.shape[0],
            max_rows=max(sorted_MX.shape[0], 1),
            sentinels=False,
        )
        # A fresh row-major copy: torch._grouped_mm needs 16-byte row strides (even for 0 rows, which .contiguous() keeps)
        rows_MH = sorted_MX[:, :-1].clone(memory_format=torch.contiguous_format)
        return rows_MH, local_plan, Exchange(send, receive, order_M, plan.token_N.shape[0])

    def combine(self, y_MH: torch.Tensor, exchange: Exchange) -> torch.Tensor:
        """The expert outputs back to their ranks: [M, H] sorted by local expert -> [N, H] in plan order."""
        unsorted_MH = torch.empty_like(y_MH).index_copy(0, exchange.order_M, y_MH) if y_MH.shape[0] else y_MH
        returned_NH = all_to_all(unsorted_MH, exchange.receive, exchange.send, self.group, self)
        padding = exchange.rows - returned_NH.shape[0]
        return torch.cat([returned_NH, returned_NH.new_zeros(padding, returned_NH.shape[1])]) if padding else returned_NH


class TokenGroup:
    """Sums over the ranks that hold different tokens of one batch: over each group in turn (the EP group, then
    the DP group of a 2-D mesh); no group: the identity."""

    def __init__(self, *groups) -> None:
        self.groups = groups

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over the groups of a tensor without gradient (a copy; the input is left as it is)."""
        total = tensor.detach().clone()
        for group in self.groups:
            dist.all_reduce(total, group=group)
        return total


LOCAL = TokenGroup()
