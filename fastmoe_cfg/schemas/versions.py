"""The versions of the config format and what each one changed, as data.

A file without `format_version` is version 1. Reading an older file applies the
changes below to it, with a warning per change that touches it (file and line);
`fastmoe-cfg upgrade` rewrites it; the docs page "Version changes" lists them.

Version 2 (the "every problem reported" round):

- `auxiliary_loss_coefficient` is derived: 0.01 with routing aux_loss, else 0. Version 1
  defaulted to 0.01 with every routing, and only aux_loss applied it, so results do not change;
  a non-zero value with another routing, ignored by version 1, is refused by version 2 and
  dropped when an old file is read.
- The sequence-wise balance loss (`sequence_auxiliary_loss_coefficient`) counts the top-k of the
  unbiased scores (DeepSeek-V3 report, eq. 18); version 1 counted the routed choice.
- With routing balanced, which ignores the router's scores, the settings that shape the scores
  had no effect and are refused by version 2; reading a version-1 file drops them.

No field was renamed in version 2.
"""

from __future__ import annotations

from typing import Any

from fastmoe_cfg.config.migrations import Change, DefaultChanged, MeaningChanged, RemovedWhen, Versions
from fastmoe_cfg.schemas.mlp import FORMAT_VERSION

__all__ = ["CHANGES", "MLP_VERSIONS"]

_OTHER_ROUTINGS = ("sinkhorn", "aux_free", "balanced")


def _moe(data: dict[str, Any]) -> bool:
    return data.get("type") == "moe"


def _routing(data: dict[str, Any]) -> Any:
    return data.get("routing") or "aux_loss"


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _balanced(data: dict[str, Any]) -> bool:
    return _moe(data) and _routing(data) == "balanced"


def _ignored_by_balanced(name: str, neutral: Any, shown: str, extra: Any = None) -> Change:
    return RemovedWhen(
        version=2,
        field=name,
        summary=(
            f"{name} other than {shown} had no effect with routing: balanced, which ignores the router's scores; "
            "version 1 accepted it, version 2 refuses it"
        ),
        when=lambda data: _balanced(data) and data.get(name) != neutral and (extra is None or extra(data)),
        condition=f"with routing: balanced and {name} other than {shown}",
    )


CHANGES: tuple[Change, ...] = (
    DefaultChanged(
        version=2,
        field="auxiliary_loss_coefficient",
        summary=(
            "derived from routing: 0.01 with aux_loss, else 0 (version 1: 0.01 with every routing, applied only with "
            "aux_loss, so results are unchanged; the layer's statistics call the loss a monitoring value)"
        ),
        when=lambda data: _moe(data) and _routing(data) in _OTHER_ROUTINGS,
        condition="unset, with a routing other than aux_loss",
        blame="routing",
    ),
    RemovedWhen(
        version=2,
        field="auxiliary_loss_coefficient",
        summary=(
            "only routing aux_loss adds the load-balancing loss: version 1 accepted a coefficient with the other routings "
            "and ignored it, version 2 refuses it"
        ),
        when=lambda data: _moe(data) and _routing(data) in _OTHER_ROUTINGS and _number(data.get("auxiliary_loss_coefficient"))
        and data["auxiliary_loss_coefficient"] != 0,
        condition="with a routing other than aux_loss and a coefficient other than 0",
    ),
    MeaningChanged(
        version=2,
        field="sequence_auxiliary_loss_coefficient",
        summary=(
            "the sequence-wise balance loss counts, per token, the top-k of the unbiased scores over all routed experts "
            "(DeepSeek-V3 report, eq. 18: no correction bias, no group limit); version 1 counted the routed choice, "
            "so the loss differs with routing aux_free, sinkhorn or balanced, and with expert_groups > 1"
        ),
        when=lambda data: _moe(data) and _number(data.get("sequence_auxiliary_loss_coefficient"))
        and data["sequence_auxiliary_loss_coefficient"] != 0,
        condition="set to a value other than 0",
    ),
    _ignored_by_balanced("router_input_scale", 1.0, "1"),
    _ignored_by_balanced("router_normalization", None, "null"),
    # Version 1's jitter acted on the router logits only (a later jitter_target can move it onto the layer input).
    _ignored_by_balanced("jitter_eps", 0.0, "0", extra=lambda data: data.get("jitter_target") in (None, "router_logits")),
    _ignored_by_balanced("router_score_function", "softmax", "softmax", extra=lambda data: data.get("router_score_function") is not None),
    _ignored_by_balanced(
        "normalize_expert_weights", True, "true",
        extra=lambda data: data.get("normalize_expert_weights") is False and data.get("router_score_function") != "sigmoid",
    ),
    _ignored_by_balanced("router_weight_on_input", False, "false"),
    _ignored_by_balanced("router_dtype", "float32", "float32"),
    _ignored_by_balanced(
        "drop_policy", None, "probability",
        extra=lambda data: data.get("drop_policy") == "position" and not data.get("balanced_routing_noise"),
    ),
)

MLP_VERSIONS = Versions(current=FORMAT_VERSION, changes=CHANGES)
