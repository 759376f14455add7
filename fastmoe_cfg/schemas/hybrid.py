"""`type: hybrid_moe`: an always-active dense MLP and routed experts on the same input, outputs summed (Fast-LLM's HybridMoEMLPConfig)."""

from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic_core import InitErrorDetails, PydanticCustomError

from fastmoe_cfg.config.base import Rule, field, format_value
from fastmoe_cfg.config.translate import RULE_ERROR
from fastmoe_cfg.schemas.mlp import TYPE_DESCRIPTION, MLPBaseConfig, MLPConfig, MoEMLPConfig


@dataclass(frozen=True)
class BranchRule(Rule):
    """A rule between the branches: `at(**values)` says which branch field (`routed.gated`) the problem is reported at."""

    at: Callable[..., tuple[str, str]]


def _blamed(name: str) -> Callable[..., tuple[str, str]]:
    """`routed.<name>` when the routed branch sets it, else `dense.<name>` when the dense one does, else `routed.<name>`."""

    def at(dense: MLPConfig, routed: MoEMLPConfig) -> tuple[str, str]:
        if routed.provenance(name) == "set" or dense.provenance(name) != "set":
            return ("routed", name)
        return ("dense", name)

    return at


@MLPBaseConfig.register("hybrid_moe")
class HybridMoEMLPConfig(MLPBaseConfig):
    """An always-active dense MLP and top-k routed experts on the same input, outputs summed:
    post_norm(dense(x̂) + routed(x̂)), x̂ = pre_norm(x) (Fast-LLM's hybrid_moe; Gemma-4's MoE decoder layers, Snowflake Arctic's dense-MoE residual).
    Each branch keeps its own pre_norm and post_norm; the router sees x̂."""

    __rules__ = (
        BranchRule(
            fields=("routed",),
            check=lambda routed: routed.shared_experts == 0,
            message=lambda routed: (
                f"must be 0 in a hybrid_moe, got {routed.shared_experts}: the dense branch is the always-active MLP "
                "(widen dense.intermediate_size instead; Fast-LLM's rule)"
            ),
            doc="routed.shared_experts is 0: the dense branch is the always-active MLP (Fast-LLM's rule).",
            at=lambda routed: ("routed", "shared_experts"),
        ),
        BranchRule(
            fields=("dense", "routed"),
            check=lambda dense, routed: dense.gated == routed.gated,
            message=lambda dense, routed: (
                f"dense and routed must agree on gated (dense {format_value(dense.gated)}, routed {format_value(routed.gated)}): "
                "checkpoint formats with a hybrid layer have one value for both (Fast-LLM's rule)"
            ),
            doc="dense.gated equals routed.gated (Fast-LLM's rule).",
            at=_blamed("gated"),
        ),
        BranchRule(
            fields=("dense", "routed"),
            # Checked only when gated agrees: different gating already derives different activations.
            check=lambda dense, routed: dense.gated != routed.gated or dense.activation == routed.activation,
            message=lambda dense, routed: (
                f"dense and routed must agree on activation (dense {format_value(dense.activation)}, routed "
                f"{format_value(routed.activation)}): checkpoint formats with a hybrid layer have one value for both (Fast-LLM's rule)"
            ),
            doc="dense.activation equals routed.activation (Fast-LLM's rule).",
            at=_blamed("activation"),
        ),
    )

    type: Literal["hybrid_moe"] = field("hybrid_moe", tier="core", desc=TYPE_DESCRIPTION)
    dense: MLPConfig = field(
        default_factory=MLPConfig, tier="architecture",
        desc="The always-active dense MLP (type: mlp), with its own pre_norm and post_norm; parameters dense.* (Fast-LLM's dense).",
    )
    routed: MoEMLPConfig = field(
        default_factory=MoEMLPConfig, tier="architecture",
        desc="The routed experts (type: moe, shared_experts 0), with their own pre_norm (experts' input only) and post_norm; parameters routed.* (Fast-LLM's routed).",
    )

    @classmethod
    def _rule_errors(cls, values: dict[str, Any]) -> list[InitErrorDetails]:
        """The base's rule errors, with those of the branch rules moved to the branch field they are about."""
        errors = super()._rule_errors(values)
        for rule in cls.__dict__["__rules__"]:
            if not all(name in values for name in rule.fields):
                continue
            arguments = {name: values[name] for name in rule.fields}
            if rule.check(**arguments):
                continue
            message = rule.message(**arguments)
            branch, name = rule.at(**arguments)
            for index, error in enumerate(errors):
                if error["loc"] == (rule.fields[0],) and error["type"].context.get("message") == message:
                    kind = PydanticCustomError(RULE_ERROR, "{message}", {"message": message, "fields": [name]})
                    errors[index] = InitErrorDetails(type=kind, loc=(branch, name), input=getattr(arguments[branch], name))
                    break
        return errors
