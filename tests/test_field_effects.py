"""Field-effect audit: no setting is silently ignored.

For every field of `MoEMLPConfig` and every routing, a config that changes the
field (from a base config, in a context where the field can matter) either
builds a layer whose outputs, gradients, parameters, buffers or learning-rate
scales differ from the base layer's, or is rejected by validation. Fields of
the `performance` and `expert` tiers must do the opposite: the same results
(within float32 tolerance) by a different execution.

Only the public API is used: `config.build(hidden_size)`, `layer(x)`,
`layer.lr_scales`, and the module's parameters and buffers.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from fastmoe_cfg.config.base import Tier  # noqa: E402
from fastmoe_cfg.config.errors import ConfigError  # noqa: E402
from fastmoe_cfg.schemas import MoEMLPConfig, RoutingType  # noqa: E402

HIDDEN = 8
BASE = {"type": "moe", "experts": 4, "experts_per_token": 2, "intermediate_size": 8}
ROUTINGS = [routing.value for routing in RoutingType]

# field -> (context applied to both configs, the change). The context puts the field where it can act:
# e.g. expert_groups only restricts the choice when fewer groups than all are kept per token.
CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "activation": ({}, {"activation": "relu"}),
    "activation_limit": ({"gated": True, "activation": "gpt_oss_glu"}, {"activation_limit": 0.5}),
    "add_linear_biases": ({}, {"add_linear_biases": False}),
    "experts": ({}, {"experts": 6}),
    "experts_per_token": ({}, {"experts_per_token": 1}),
    "gated": ({}, {"gated": True}),
    "intermediate_size": ({}, {"intermediate_size": 12}),
    "layer_1": ({}, {"layer_1": {"weight": {"lr_scale": 0.5}}}),
    "layer_2": ({}, {"layer_2": {"weight": {"initialization": {"type": "normal", "std": 2.0}}}}),
    "pre_norm": ({}, {"pre_norm": {"type": "rms_norm"}}),
    "post_norm": ({}, {"post_norm": {"type": "rms_norm"}}),
    "lr_scale": ({}, {"lr_scale": 0.5}),
    "recompute_level": ({}, {"recompute_level": "full"}),
    "router_input_scale": ({}, {"router_input_scale": 0.25}),
    "router_normalization": ({}, {"router_normalization": {"type": "rms_norm", "weight": {"enabled": False}}}),
    "router_per_expert_scale": ({}, {"router_per_expert_scale": {"enabled": True}}),
    "router_scale": ({}, {"router_scale": {"enabled": True, "initialization": {"type": "fill", "value": 3.0}}}),
    "router": ({}, {"router": {"weight": {"initialization": {"type": "normal", "std": 2.0}}}}),
    "shared_experts": ({"experts": 5}, {"shared_experts": 1}),
    "auxiliary_loss_coefficient": ({}, {"auxiliary_loss_coefficient": 0.5}),
    "z_loss_coefficient": ({}, {"z_loss_coefficient": 0.5}),
    "jitter_eps": ({}, {"jitter_eps": 0.5}),
    "dropless_dynamic_shape": ({}, {"dropless_dynamic_shape": True}),
    "implementation": ({}, {"implementation": "looped"}),
    # The torch kernels (auto picks them on the CPU; Triton on the CPU needs its interpreter: tests/layers/test_kernels.py).
    "dropless_kernel": ({}, {"dropless_kernel": "torch"}),
    "router_score_function": ({}, {"router_score_function": "sigmoid"}),
    "normalize_expert_weights": ({"normalize_expert_weights": True}, {"normalize_expert_weights": False}),
    "routed_scaling_factor": ({}, {"routed_scaling_factor": 2.0}),
    "routing": ({}, {"routing": "sinkhorn"}),  # from aux_loss; sinkhorn itself changes to aux_loss below
    "expert_groups": ({"expert_groups_per_token": 1}, {"expert_groups": 2}),
    "expert_groups_per_token": ({"expert_groups": 2}, {"expert_groups_per_token": 1}),
    "expert_group_score": ({"expert_groups": 2, "expert_groups_per_token": 1}, {"expert_group_score": "max"}),
    "shared_expert_intermediate_size": ({"experts": 5, "shared_experts": 1}, {"shared_expert_intermediate_size": 16}),
    "shared_expert_gate": ({"experts": 5, "shared_experts": 1}, {"shared_expert_gate": {"enabled": True}}),
    "router_weight_on_input": (
        {"experts_per_token": 1, "normalize_expert_weights": False, "activation": "relu"}, {"router_weight_on_input": True}
    ),
    "router_bias": ({}, {"router_bias": {"enabled": True}}),
    "capacity_factor": ({}, {"capacity_factor": 0.5}),
    "drop_policy": ({"capacity_factor": 0.5, "drop_policy": "probability"}, {"drop_policy": "position"}),
    "bias_update_rate": ({"automatic_bias_update": True}, {"bias_update_rate": 0.5}),
    "automatic_bias_update": ({}, {"automatic_bias_update": True}),
    "sequence_auxiliary_loss_coefficient": ({}, {"sequence_auxiliary_loss_coefficient": 0.5}),
    "router_dtype": ({}, {"router_dtype": "float64"}),
    "balanced_routing_noise": ({}, {"balanced_routing_noise": 0.5}),
    "dropout": ({}, {"dropout": 0.5}),
    "jitter_target": ({"jitter_eps": 0.5, "jitter_target": "layer_input"}, {"jitter_target": "router_input"}),
    "jitter_distribution": ({"jitter_eps": 0.5, "jitter_target": "layer_input"}, {"jitter_distribution": "normal"}),
    # 5 experts: balanced routing's 24 assignments cannot load them equally (with 4, scaling would change nothing).
    "expert_load_scaling": ({"experts": 5}, {"expert_load_scaling": True}),
    "bias_update_rule": ({"automatic_bias_update": True}, {"bias_update_rule": "ema"}),
    "bias_update_ema_decay": ({"automatic_bias_update": True, "bias_update_rule": "ema"}, {"bias_update_ema_decay": 0.5}),
    "bias_update_schedule": (
        {"automatic_bias_update": True, "bias_update_schedule": "cosine_decay", "bias_update_total_steps": 10}, {"bias_update_schedule": "linear_warmup"}
    ),
    "bias_update_total_steps": (
        {"automatic_bias_update": True, "bias_update_schedule": "linear_warmup", "bias_update_total_steps": 10}, {"bias_update_total_steps": 20}
    ),
    # The bias acts from the second forward on (it starts at 0): with automatic updates the fingerprint runs two.
    "correction_bias_target": (
        {"router_score_function": "sigmoid", "automatic_bias_update": True, "bias_update_rate": 0.5}, {"correction_bias_target": "logits"}
    ),
    "expert_weights_norm_order": ({}, {"expert_weights_norm_order": 2.0}),
    "expert_weights_epsilon": ({}, {"expert_weights_epsilon": 0.5}),
    "sparsemixer_eps": ({}, {"sparsemixer_eps": 0.05}),
}
# Not settings of the layer: the variant's tag and the format's version.
NOT_AUDITED = {"type", "format_version"}
# The performance and expert fields: the same function, another execution.
SAME_RESULTS = {name for name in MoEMLPConfig.model_fields if MoEMLPConfig.field_tier(name) in (Tier.performance, Tier.expert)}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_every_field_is_audited() -> None:
    assert set(CHANGES) | NOT_AUDITED == set(MoEMLPConfig.model_fields)


def _config(data: dict[str, Any]) -> MoEMLPConfig | None:
    try:
        return MoEMLPConfig.from_dict(data)
    except ConfigError:
        return None


def _fingerprint(config: MoEMLPConfig) -> dict[str, Any]:
    """Everything a setting can change: output, input and parameter gradients, parameters, buffers, lr scales."""
    torch.manual_seed(0)
    layer = config.build(HIDDEN)
    layer.train()
    x = torch.randn(2, 6, HIDDEN, generator=torch.Generator().manual_seed(1), requires_grad=True)
    torch.manual_seed(2)  # the same noise (jitter, balanced noise) for both layers
    if config.automatic_bias_update:  # a first forward moves the correction bias, which the second routes with
        layer(x.detach())
    out = layer(x)
    out.square().sum().backward()
    found: dict[str, Any] = {"output": out.detach(), "input grad": x.grad, "lr_scales": dict(layer.lr_scales)}
    for name, parameter in layer.named_parameters():
        found[f"parameter {name}"] = parameter.detach()
        found[f"grad {name}"] = parameter.grad
    for name, buffer in layer.named_buffers():
        found[f"buffer {name}"] = buffer
    return found


def _same(a: Any, b: Any, *, exact: bool) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if exact:
            return torch.equal(a, b)
        return torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-6)  # float32, another summation order
    return a == b


def _differences(base: dict[str, Any], changed: dict[str, Any], *, exact: bool) -> list[str]:
    keys = sorted(set(base) | set(changed))
    return [key for key in keys if key not in base or key not in changed or not _same(base[key], changed[key], exact=exact)]


@pytest.mark.parametrize("routing", ROUTINGS)
def test_every_field_acts_or_is_rejected(routing: str) -> None:
    ignored, not_equal = [], []
    bases: dict[str, dict[str, Any]] = {}
    for name, (context, change) in CHANGES.items():
        if name == "routing" and routing == "sinkhorn":
            change = {"routing": "aux_loss"}
        base = _config({**BASE, "routing": routing, **context})
        changed = _config({**BASE, "routing": routing, **context, **change})
        if changed is None:
            continue  # rejected: fine
        assert base is not None, f"{name}: the base config of the audit is invalid under routing {routing}"
        key = repr(sorted(context.items()))
        if key not in bases:
            bases[key] = _fingerprint(base)
        differences = _differences(bases[key], _fingerprint(changed), exact=name not in SAME_RESULTS)
        if name in SAME_RESULTS and differences:
            not_equal.append(f"{name}: {', '.join(differences)}")
        elif name not in SAME_RESULTS and not differences:
            ignored.append(name)
    assert ignored == [], f"routing {routing}: accepted but without any effect: {ignored}"
    assert not_equal == [], f"routing {routing}: a performance/expert field changed the results"
