"""Linear layers: one weight matrix, or one per expert (`Linear(..., experts=E)`)."""

import torch
from torch import nn

from fastmoe_cfg.layers.initialization import fill, initialize_, initialize_experts_, normal
from fastmoe_cfg.layers.lr import scale_of
from fastmoe_cfg.schemas.linear import AffineLinearConfig, LinearConfig
from fastmoe_cfg.schemas.parameter import ParameterConfig


class Linear(nn.Module):
    """y = x · Wᵀ (+ b). `weight` is [out, in] (`experts` > 0: [experts, out, in], one matrix per expert).

    The bias follows `config.bias`, or `bias_config` for a bias declared apart (the router's).
    With `expert_mesh` (a 1-D DeviceMesh; expert parallelism), `weight` and `bias` are DTensors of the
    full shape, sharded `Shard(0)` over the mesh: rank r holds experts r·E/ep … (r+1)·E/ep − 1 and
    allocates only those. Per-expert weights are drawn one expert at a time (`initialize_experts_`).
    """

    def __init__(
        self,
        config: LinearConfig,
        in_features: int,
        out_features: int,
        *,
        bias: bool,
        default_std: float,
        experts: int = 0,
        expert_mesh=None,
        bias_config: ParameterConfig | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.experts, self.first_expert, local, self.weight_shards = experts, 0, experts, 1
        if expert_mesh is not None:
            self.weight_shards = expert_mesh.size()
            local = experts // self.weight_shards
            self.first_expert = expert_mesh.get_local_rank() * local
        leading = (local,) if experts else ()
        self.weight = nn.Parameter(sharded(torch.empty(*leading, out_features, in_features, device=device, dtype=dtype), expert_mesh))
        self.bias = None
        if bias:
            self.bias = nn.Parameter(sharded(torch.empty(*leading, out_features, device=device, dtype=dtype), expert_mesh))
        self._weight_init = config.weight.initialization, normal(default_std)
        self._bias_init = (bias_config or config.bias).initialization if bias else None, fill(0.0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weight, then the bias, from their initialization configs (or the owner's defaults)."""
        for parameter, init in ((self.weight, self._weight_init), (self.bias, self._bias_init)):
            if parameter is None:
                continue
            if self.experts:
                local = local_tensor(parameter)
                if local.shape[0] != self.experts // self.weight_shards:
                    raise RuntimeError(
                        f"the experts are sharded further than ep_mesh ({local.shape[0]} of {self.experts} here, e.g. by "
                        "fully_shard over another mesh dimension): initialise them (reset_parameters) before sharding them further"
                    )
                initialize_experts_(local, *init, first=self.first_expert, total=self.experts)
            else:
                initialize_(parameter, *init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


def sharded(local: torch.Tensor, mesh) -> torch.Tensor:
    """`local` as the Shard(0) part of a DTensor over `mesh` (the full shape: ep × local rows), or itself without a mesh."""
    if mesh is None:
        return local
    from torch.distributed.tensor import DTensor, Shard

    return DTensor.from_local(local, mesh, [Shard(0)], run_check=False)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of a DTensor (a view that autograd follows), or the tensor itself."""
    to_local = getattr(tensor, "to_local", None)
    return tensor if to_local is None else to_local()


def linear_lr_scales(
    config: LinearConfig, prefix: str, scale: float, *, bias: bool, bias_config: ParameterConfig | None = None
) -> dict[str, float]:
    """Learning-rate scales of a linear's parameters: MLP scale × linear scale × parameter scale."""
    layer_scale = scale * scale_of(config.lr_scale)
    scales = {f"{prefix}.weight": layer_scale * scale_of(config.weight.lr_scale)}
    if bias_config is None and isinstance(config, AffineLinearConfig):
        bias_config = config.bias
    if bias and bias_config is not None:
        scales[f"{prefix}.bias"] = layer_scale * scale_of(bias_config.lr_scale)
    return scales
