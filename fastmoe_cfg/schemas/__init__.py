"""The concrete config classes. Importing this package registers every built-in variant."""

from fastmoe_cfg.schemas.enums import (
    ActivationType,
    DropPolicy,
    MLPRecomputeLevel,
    MoEImplementation,
    RouterDtype,
    RouterScoreFunction,
    RoutingType,
)
from fastmoe_cfg.schemas.initialization import (
    FillInitializationConfig,
    InitializationConfig,
    NormalInitializationConfig,
    UniformInitializationConfig,
)
from fastmoe_cfg.schemas.linear import AffineLinearConfig, LinearConfig
from fastmoe_cfg.schemas.mlp import FORMAT_VERSION, MLPBaseConfig, MLPConfig, MoEMLPConfig
from fastmoe_cfg.schemas.normalization import (
    AffineNormalizationConfig,
    LayerNormalizationConfig,
    NoNormalizationConfig,
    NormalizationConfig,
    RMSNormalizationConfig,
)
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig, ParameterConfig

__all__ = [
    "FORMAT_VERSION",
    "ActivationType",
    "AffineLinearConfig",
    "AffineNormalizationConfig",
    "DropPolicy",
    "FillInitializationConfig",
    "InitializationConfig",
    "LayerNormalizationConfig",
    "LinearConfig",
    "MLPBaseConfig",
    "MLPConfig",
    "MLPRecomputeLevel",
    "MoEImplementation",
    "MoEMLPConfig",
    "NoNormalizationConfig",
    "NormalInitializationConfig",
    "NormalizationConfig",
    "OptionalParameterConfig",
    "ParameterConfig",
    "RMSNormalizationConfig",
    "RouterDtype",
    "RouterScoreFunction",
    "RoutingType",
    "UniformInitializationConfig",
]
