"""The MLP schemas: the exact field table of DESIGN.md section 3, constraints, variants."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.base import Tier
from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.schemas import (
    ActivationType,
    AffineLinearConfig,
    LinearConfig,
    MLPBaseConfig,
    MLPConfig,
    MLPRecomputeLevel,
    MoEImplementation,
    MoEMLPConfig,
    OptionalParameterConfig,
    RoutingType,
)
from fastmoe_cfg.schemas.enums import DroplessKernel, DropPolicy, RouterDtype, RouterScoreFunction
from fastmoe_cfg.schemas.initialization import InitializationConfig
from fastmoe_cfg.schemas.normalization import NormalizationConfig

# name: (tier, default) -- the 24 fields of the seed table (Fast-LLM's MoEMLPConfig).
SEED_FIELDS = {
    "activation": ("core", None),
    "add_linear_biases": ("architecture", True),
    "experts": ("architecture", 2),
    "experts_per_token": ("architecture", 1),
    "gated": ("architecture", False),
    "intermediate_size": ("architecture", 4096),
    "layer_1": ("architecture", AffineLinearConfig()),
    "layer_2": ("architecture", AffineLinearConfig()),
    "pre_norm": ("architecture", None),
    "post_norm": ("architecture", None),
    "router_input_scale": ("architecture", 1.0),
    "router_normalization": ("architecture", None),
    "router_per_expert_scale": ("architecture", OptionalParameterConfig()),
    "router_scale": ("architecture", OptionalParameterConfig()),
    "routing": ("architecture", RoutingType.aux_loss),
    "shared_experts": ("architecture", 0),
    "auxiliary_loss_coefficient": ("feature", None),  # derived from routing (issue 17): 0.01 with aux_loss, else 0
    "jitter_eps": ("feature", 0.0),
    "lr_scale": ("feature", None),
    "router": ("feature", LinearConfig()),
    "z_loss_coefficient": ("feature", 0.0),
    "recompute_level": ("performance", MLPRecomputeLevel.none),
    "dropless_dynamic_shape": ("expert", False),
    "implementation": ("expert", MoEImplementation.auto),
}
# The variant selector and the format version, both core, come on top of the table.
SELECTORS = {"type": ("core", "moe"), "format_version": ("core", None)}
# name: (tier, default) -- the routing fields of the other MoE families (issue 6), beyond the seed table.
FAMILY_FIELDS = {
    "activation_limit": ("architecture", None),
    "router_score_function": ("architecture", None),
    "normalize_expert_weights": ("architecture", None),
    "routed_scaling_factor": ("architecture", 1.0),
    "expert_groups": ("architecture", 1),
    "expert_groups_per_token": ("architecture", None),
    "expert_group_score": ("architecture", None),
    "shared_expert_intermediate_size": ("architecture", None),
    "shared_expert_gate": ("architecture", OptionalParameterConfig()),
    "router_weight_on_input": ("architecture", False),
    "router_bias": ("architecture", OptionalParameterConfig()),
    "capacity_factor": ("architecture", None),
    "drop_policy": ("architecture", None),
    "bias_update_rate": ("feature", None),
    "automatic_bias_update": ("feature", None),
    "sequence_auxiliary_loss_coefficient": ("feature", 0.0),
    "router_dtype": ("feature", RouterDtype.float32),
    "balanced_routing_noise": ("feature", None),
}
# name: (tier, default) -- the options of the other seed systems (issue 19).
SYSTEM_FIELDS = {
    "dropout": ("feature", 0.0),
    "jitter_target": ("feature", None),
    "jitter_distribution": ("feature", None),
    "expert_load_scaling": ("feature", False),
    "bias_update_rule": ("feature", None),
    "bias_update_ema_decay": ("feature", None),
    "bias_update_schedule": ("feature", None),
    "bias_update_total_steps": ("feature", None),
    "correction_bias_target": ("architecture", None),
}
# name: (tier, default) -- the weight options of the Hugging Face families of issue 16.
HF_FAMILY_FIELDS = {
    "expert_weights_norm_order": ("architecture", 1.0),
    "expert_weights_epsilon": ("architecture", None),
    "sparsemixer_eps": ("architecture", None),
}
# name: (tier, default) -- the choice of the dropless kernels (issue 18).
KERNEL_FIELDS = {"dropless_kernel": ("expert", DroplessKernel.auto)}
# Derived defaults: their value in a default MoEMLPConfig() (not gated, aux_loss, k = 1, one group).
DERIVED_IN_DEFAULT = {
    "activation": ActivationType.gelu,
    "router_score_function": RouterScoreFunction.softmax,
    "normalize_expert_weights": True,
    "expert_groups_per_token": 1,
    "auxiliary_loss_coefficient": 0.01,
}
ALL_FIELDS = {**SEED_FIELDS, **SELECTORS, **FAMILY_FIELDS, **SYSTEM_FIELDS, **HF_FAMILY_FIELDS, **KERNEL_FIELDS}


def test_moe_has_exactly_the_seed_fields_and_the_family_fields() -> None:
    assert len(SEED_FIELDS) == 24 and len(FAMILY_FIELDS) == 18 and len(SYSTEM_FIELDS) == 9
    assert set(MoEMLPConfig.model_fields) == set(ALL_FIELDS)


@pytest.mark.parametrize("name", sorted(ALL_FIELDS))
def test_field_tier_default_and_description(name: str) -> None:
    tier, default = ALL_FIELDS[name]
    assert MoEMLPConfig.field_tier(name) is Tier(tier)
    assert MoEMLPConfig.field_default(name) == default
    assert getattr(MoEMLPConfig(), name) == DERIVED_IN_DEFAULT.get(name, default)
    assert MoEMLPConfig.model_fields[name].description


def test_dense_has_the_non_moe_fields() -> None:
    moe_only = {
        "experts", "experts_per_token", "shared_experts", "routing", "router", "router_normalization",
        "router_scale", "router_input_scale", "router_per_expert_scale", "auxiliary_loss_coefficient",
        "z_loss_coefficient", "jitter_eps", "dropless_dynamic_shape", "implementation", "dropless_kernel",
    }
    # Of the family fields only activation_limit (of gpt_oss_glu), of the systems' only dropout, belong to the dense MLP too.
    dense_family = {"activation_limit", "dropout"}
    assert set(MLPConfig.model_fields) == (set(SEED_FIELDS) - moe_only) | dense_family | set(SELECTORS)
    assert MLPConfig.field_tier("activation_limit") is Tier.architecture
    assert MLPConfig().type == "mlp"


def test_every_field_of_every_class_has_a_tier_and_description() -> None:
    from fastmoe_cfg.config.base import all_config_classes

    for klass in all_config_classes():
        if klass.__module__.startswith("fastmoe_cfg."):
            assert klass.__doc__, klass
            for name, info in klass.model_fields.items():
                assert info.description, f"{klass.__name__}.{name}"
                klass.field_tier(name)


def test_enums() -> None:
    assert [member.value for member in ActivationType] == [
        "gelu", "gelu_exact", "silu", "relu", "squared_relu", "identity", "sigmoid", "gpt_oss_glu",
    ]
    assert [member.value for member in RoutingType] == ["aux_loss", "sinkhorn", "aux_free", "balanced"]
    assert [member.value for member in RouterScoreFunction] == ["softmax", "sigmoid"]
    assert [member.value for member in DropPolicy] == ["probability", "position"]
    assert [member.value for member in RouterDtype] == ["float32", "float64", "input"]
    assert [member.value for member in MoEImplementation] == ["auto", "dropless", "looped"]
    assert [member.value for member in MLPRecomputeLevel] == ["none", "activation", "activation_and_input", "full"]
    assert "tanh" in ActivationType.gelu.description


def test_variants() -> None:
    assert sorted(MLPBaseConfig.variants()) == ["hybrid_moe", "mlp", "moe"]
    assert sorted(NormalizationConfig.variants()) == ["fixed_rms_norm", "layer_norm", "none", "rms_norm"]
    assert sorted(InitializationConfig.variants()) == ["fill", "normal", "uniform"]
    assert NormalizationConfig.__default_variant__ == "layer_norm"
    assert InitializationConfig.__default_variant__ == "normal"


VALID = [
    {"type": "moe", "experts": 1, "experts_per_token": 1},
    {"type": "moe", "experts": 8, "experts_per_token": 6, "shared_experts": 2},
    {"type": "moe", "jitter_eps": 0.999, "auxiliary_loss_coefficient": 0, "z_loss_coefficient": 0.0},
    {"type": "moe", "router_scale": {"enabled": True}, "router_per_expert_scale": {"enabled": True, "lr_scale": 0.0}},
    {"type": "moe", "router_normalization": {"type": "rms_norm", "epsilon": 1e-6, "weight": {"initialization": {"type": "fill", "value": 1}}}},
    {"layer_1": {"bias": {"enabled": False}}, "layer_2": {"weight": {"initialization": {"type": "uniform", "scale": 0.1}}}},
    {"pre_norm": {"type": "none"}, "post_norm": {"zero_centered": True}},
    {"type": "moe", "router_normalization": {"type": "rms_norm", "weight": {"enabled": False}}, "router_scale": {"enabled": True}},
    {"layer_1": {"weight": {"initialization": {"type": "normal", "std": 0.02, "min": -0.04, "max": 0.04}}}},
]


@pytest.mark.parametrize("data", VALID)
def test_valid_configs(data: dict) -> None:
    MLPBaseConfig.from_dict(data)


INVALID = {
    "experts >= 1": ({"type": "moe", "experts": 0}, "experts: must be >= 1, got 0"),
    "experts_per_token >= 1": ({"type": "moe", "experts_per_token": 0}, "experts_per_token: must be >= 1, got 0"),
    "shared_experts >= 0": ({"type": "moe", "shared_experts": -1}, "shared_experts: must be >= 0, got -1"),
    "k + shared <= experts": (
        {"type": "moe", "experts": 4, "experts_per_token": 2, "shared_experts": 3},
        "experts_per_token: must satisfy experts_per_token + shared_experts <= experts (2 + 3 > 4)",
    ),
    "intermediate_size >= 1": ({"intermediate_size": 0}, "intermediate_size: must be >= 1, got 0"),
    "aux coefficient >= 0": ({"type": "moe", "auxiliary_loss_coefficient": -0.1}, "auxiliary_loss_coefficient: must be >= 0, got -0.1"),
    "z coefficient >= 0": ({"type": "moe", "z_loss_coefficient": -1.0}, "z_loss_coefficient: must be >= 0, got -1.0"),
    "jitter >= 0": ({"type": "moe", "jitter_eps": -0.5}, "jitter_eps: must be >= 0, got -0.5"),
    "jitter < 1": ({"type": "moe", "jitter_eps": 1}, "jitter_eps: must be < 1, got 1"),
    "router_input_scale > 0": ({"type": "moe", "router_input_scale": 0.0}, "router_input_scale: must be > 0, got 0.0"),
    "lr_scale >= 0": ({"lr_scale": -1.0}, "lr_scale: must be >= 0, got -1.0"),
    "epsilon > 0": ({"pre_norm": {"type": "rms_norm", "epsilon": 0.0}}, "pre_norm.epsilon: must be > 0, got 0.0"),
    "zero_centered needs a weight": (
        {"post_norm": {"type": "rms_norm", "zero_centered": True, "weight": {"enabled": False}}},
        "post_norm.zero_centered: stores the weight as an offset from 1: it needs the weight (weight.enabled is false)",
    ),
    "std >= 0": (
        {"layer_1": {"weight": {"initialization": {"std": -1.0}}}},
        "layer_1.weight.initialization.std: must be >= 0, got -1.0",
    ),
    "min < max": (
        {"layer_1": {"weight": {"initialization": {"min": 1.0, "max": -1.0}}}},
        "layer_1.weight.initialization.min: must satisfy min < max (1.0 >= -1.0)",
    ),
    "fill needs value": ({"layer_2": {"bias": {"initialization": {"type": "fill"}}}}, "layer_2.bias.initialization.value: missing required field"),
    "format_version": ({"format_version": 3}, "format_version: must be <= 2, got 3"),
    "dense has no experts": ({"type": "mlp", "experts": 4}, "experts: unknown field for type: mlp (a field of type: moe)"),
    "enum": ({"activation": "swish"}, "activation: expected one of gelu, gelu_exact, silu, relu, squared_relu, identity, sigmoid, gpt_oss_glu; got string 'swish'"),
    "recompute enum": (
        {"recompute_level": "ful"},
        "recompute_level: expected one of none, activation, activation_and_input, full; got string 'ful' (did you mean full?)",
    ),
}


@pytest.mark.parametrize("data, message", list(INVALID.values()), ids=list(INVALID))
def test_invalid_configs(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        MLPBaseConfig.from_dict(data)
    assert str(info.value) == message
