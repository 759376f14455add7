"""`field(default_factory=SomeConfig)`: the default is `SomeConfig()`, made without validation only where that is the same."""

import pytest

from fastmoe_cfg.config.base import Config, Rule, all_config_classes, field
from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.schemas import MLPConfig, MoEMLPConfig


class _Required(Config):
    """A held class with a required field: its default cannot be made."""

    size: int = field(tier="core")


class _Ruled(Config):
    """A held class whose rule fails on its own defaults."""

    __rules__ = (Rule(fields=("low", "high"), check=lambda low, high: low < high, message=lambda low, high: "low >= high", doc="low < high"),)

    low: int = field(2, tier="core")
    high: int = field(1, tier="core")


class _HoldsRequired(Config):
    """Holds `_Required` by default."""

    inner: _Required = field(default_factory=_Required, tier="core")


class _HoldsRuled(Config):
    """Holds `_Ruled` by default."""

    inner: _Ruled = field(default_factory=_Ruled, tier="core")


def test_every_config_default_equals_a_validated_instance() -> None:
    checked = 0
    for klass in all_config_classes():
        if not klass.__module__.startswith("fastmoe_cfg."):
            continue
        for name, info in klass.model_fields.items():
            held = klass.field_config_class(name)
            if info.default_factory is None or held is None:
                continue
            made, validated = info.get_default(call_default_factory=True), held()
            assert type(made) is type(validated) and made == validated, (klass.__name__, name)
            assert made.model_fields_set == validated.model_fields_set == set()
            assert made.to_dict(resolved=True) == validated.to_dict(resolved=True)
            checked += 1
    assert checked >= 10
    assert MoEMLPConfig() == MoEMLPConfig.from_dict({}) and MLPConfig().layer_1 == MLPConfig.from_dict({}).layer_1


@pytest.mark.parametrize("holder", [_HoldsRequired, _HoldsRuled])
def test_a_default_that_needs_validation_is_validated(holder: type[Config]) -> None:
    with pytest.raises(ConfigError):
        holder()
