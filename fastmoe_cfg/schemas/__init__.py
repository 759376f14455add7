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
from fastmoe_cfg.schemas.hybrid import HybridMoEMLPConfig
from fastmoe_cfg.schemas.linear import AffineLinearConfig, LinearConfig
from fastmoe_cfg.schemas.mlp import FORMAT_VERSION, MLPBaseConfig, MLPConfig, MoEMLPConfig, TwoLayerMLPConfig
from fastmoe_cfg.schemas.normalization import (
    AffineNormalizationConfig,
    FixedRMSNormalizationConfig,
    LayerNormalizationConfig,
    NoNormalizationConfig,
    NormalizationConfig,
    NormalizationImplementation,
    RMSNormalizationConfig,
)
from fastmoe_cfg.schemas.parameter import OptionalParameterConfig, ParameterConfig
from fastmoe_cfg.schemas.stack import LayerOverrideConfig, StackConfig  # also registers the format versions

__all__ = [
    "FORMAT_VERSION",
    "ActivationType",
    "AffineLinearConfig",
    "AffineNormalizationConfig",
    "DropPolicy",
    "FillInitializationConfig",
    "FixedRMSNormalizationConfig",
    "HybridMoEMLPConfig",
    "InitializationConfig",
    "LayerNormalizationConfig",
    "LayerOverrideConfig",
    "LinearConfig",
    "MLPBaseConfig",
    "MLPConfig",
    "MLPRecomputeLevel",
    "MoEImplementation",
    "MoEMLPConfig",
    "NoNormalizationConfig",
    "NormalInitializationConfig",
    "NormalizationConfig",
    "NormalizationImplementation",
    "OptionalParameterConfig",
    "ParameterConfig",
    "RMSNormalizationConfig",
    "RouterDtype",
    "RouterScoreFunction",
    "RoutingType",
    "StackConfig",
    "TwoLayerMLPConfig",
    "UniformInitializationConfig",
]
