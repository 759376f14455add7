"""PyTorch layers built from configs. Imported lazily by `MLPBaseConfig.build()`: this is the only package that imports torch."""

from fastmoe_cfg.layers.hybrid import HybridMoEMLP
from fastmoe_cfg.layers.lr import parameter_groups
from fastmoe_cfg.layers.mlp import MLP
from fastmoe_cfg.layers.moe import MoEMLP
from fastmoe_cfg.schemas.hybrid import HybridMoEMLPConfig
from fastmoe_cfg.schemas.mlp import MLPBaseConfig, MLPConfig, MoEMLPConfig

__all__ = ["MLP", "HybridMoEMLP", "MoEMLP", "build_layer", "parameter_groups"]


def build_layer(config: MLPBaseConfig, hidden_size: int, *, device=None, dtype=None, ep_mesh=None, dp_mesh=None):
    """The torch module `config` describes, for a model of width `hidden_size` (routed experts over `ep_mesh` for moe and hybrid_moe)."""
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
        raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
    if isinstance(config, MoEMLPConfig):
        return MoEMLP(config, hidden_size, device=device, dtype=dtype, ep_mesh=ep_mesh, dp_mesh=dp_mesh)
    if isinstance(config, HybridMoEMLPConfig):
        return HybridMoEMLP(config, hidden_size, device=device, dtype=dtype, ep_mesh=ep_mesh, dp_mesh=dp_mesh)
    if ep_mesh is not None or dp_mesh is not None:
        raise ValueError(f"expert parallelism (ep_mesh, dp_mesh) needs experts: type moe or hybrid_moe, not {config.type}")
    if isinstance(config, MLPConfig):
        return MLP(config, hidden_size, device=device, dtype=dtype)
    raise NotImplementedError(f"no layer implementation for MLP type {config.type or type(config).__name__!r}; a plugin variant defines build()")
