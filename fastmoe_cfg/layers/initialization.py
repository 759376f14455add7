"""Fill a parameter as its `InitializationConfig` says (or as its owner's default does)."""

import math

import torch

from fastmoe_cfg.schemas.initialization import (
    FillInitializationConfig,
    InitializationConfig,
    NormalInitializationConfig,
    UniformInitializationConfig,
)


def normal(std: float) -> NormalInitializationConfig:
    return NormalInitializationConfig(std=std)


def fill(value: float) -> FillInitializationConfig:
    return FillInitializationConfig(value=value)


@torch.no_grad()
def initialize_(tensor: torch.Tensor, config: InitializationConfig | None, default: InitializationConfig) -> torch.Tensor:
    """Fill `tensor` in place from `config`, or from `default` when `config` is None.

    Values are drawn in float64 on the tensor's device, then cast: a truncated normal
    is sampled by inverting the CDF between the bounds (the same distribution as
    redrawing out-of-range values, in one pass, even far in the tail).
    """
    config = default if config is None else config
    if isinstance(config, FillInitializationConfig):
        return tensor.fill_(config.value)
    values = torch.empty(tensor.shape, dtype=torch.float64, device=tensor.device)
    if isinstance(config, UniformInitializationConfig):
        values.uniform_(config.mean - config.scale, config.mean + config.scale)
    elif isinstance(config, NormalInitializationConfig):
        if config.min is None and config.max is None or config.std == 0:
            values.normal_(config.mean, config.std)
        else:
            values = _truncated_normal(values, config)
    else:  # A plugin variant without a layer implementation.
        raise NotImplementedError(f"no layer implementation for initialization type {config.type!r}")
    return tensor.copy_(values)


@torch.no_grad()
def initialize_experts_(
    tensor: torch.Tensor, config: InitializationConfig | None, default: InitializationConfig, *, first: int = 0, total: int | None = None
) -> torch.Tensor:
    """Fill the per-expert `tensor` [E_local, ...] (experts first … first + E_local − 1 of `total`) in place.

    Each of the `total` experts is drawn in turn, as `initialize_` draws a tensor of one expert's
    shape; the experts outside this rank's slice are drawn and dropped. So an expert-parallel rank
    gets exactly the values the single-process layer gives its experts under the same seed, and
    the generator ends in the same state (holding one expert's values at a time, never all of them).
    """
    total = tensor.shape[0] if total is None else total
    local = tensor.shape[0]
    if tensor.is_meta or isinstance(default if config is None else config, FillInitializationConfig):
        return initialize_(tensor, config, default)  # nothing drawn: one call (a meta build of 256 experts stays fast)
    scratch = torch.empty(tensor.shape[1:], dtype=tensor.dtype, device=tensor.device)
    for expert in range(total):
        if first <= expert < first + local:
            initialize_(tensor[expert - first], config, default)
        else:
            initialize_(scratch, config, default)
    return tensor


def _truncated_normal(values: torch.Tensor, config: NormalInitializationConfig) -> torch.Tensor:
    def cdf(bound: float | None, infinite: float) -> float:
        if bound is None:
            return infinite
        return 0.5 * (1 + math.erf((bound - config.mean) / (config.std * math.sqrt(2))))

    low, high = cdf(config.min, 0.0), cdf(config.max, 1.0)
    tiny = torch.finfo(torch.float64).tiny
    probabilities = values.uniform_(low, high).clamp_(tiny, 1 - 2**-53)
    drawn = config.mean + config.std * torch.special.ndtri(probabilities)
    # Rounding at the edge of the interval can step just outside it.
    return drawn.clamp_(
        -math.inf if config.min is None else config.min,
        math.inf if config.max is None else config.max,
    )
