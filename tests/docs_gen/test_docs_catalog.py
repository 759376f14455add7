"""Which classes the reference documents, and that an undocumentable one is an error, never a skip."""

from __future__ import annotations

from typing import Literal

import pytest

from fastmoe_cfg.config.base import DescribedEnum, field
from fastmoe_cfg.docs_gen import DocsError, build_catalog, reference_pages
from fastmoe_cfg.docs_gen.reference import default_roots
from fastmoe_cfg.schemas import InitializationConfig, MLPBaseConfig, MLPConfig, NormalizationConfig

BUILTIN_CLASSES = [
    "MLPBaseConfig", "MLPConfig", "MoEMLPConfig", "HybridMoEMLPConfig", "NormalizationConfig", "TwoLayerMLPConfig",
    "AffineLinearConfig", "OptionalParameterConfig", "LinearConfig", "NoNormalizationConfig", "LayerNormalizationConfig",
    "RMSNormalizationConfig", "FixedRMSNormalizationConfig", "ParameterConfig", "InitializationConfig", "AffineNormalizationConfig",
    "NormalInitializationConfig", "UniformInitializationConfig", "FillInitializationConfig", "StackConfig", "LayerOverrideConfig",
]  # fmt: skip


def test_builtin_catalog() -> None:
    catalog = build_catalog(default_roots())
    assert [klass.__name__ for klass in catalog.classes] == BUILTIN_CLASSES
    assert [kind.__name__ for kind in catalog.enums] == [
        "ActivationType", "MLPRecomputeLevel", "RoutingType", "MoEImplementation", "DroplessKernel", "RouterScoreFunction", "ExpertGroupScore",
        "DropPolicy", "RouterDtype", "JitterTarget", "JitterDistribution", "BiasUpdateRule", "BiasUpdateSchedule", "CorrectionBiasTarget",
        "NormalizationImplementation",
    ]


def test_every_registered_builtin_variant_has_a_page(pages: dict[str, str]) -> None:
    for base in (MLPBaseConfig, NormalizationConfig, InitializationConfig):
        for name, variant in base.variants().items():
            assert f"select with `type: {name}`" in pages[f"{variant.__name__}.md"]


@pytest.fixture
def undocumented_variant():
    """A registered MLP variant with no docstring and a field without description (a careless plugin)."""

    class Undocumented(MLPConfig):
        type: Literal["undocumented_test_variant"] = field("undocumented_test_variant", tier="core", desc="The variant.")
        depth: int = field(1, tier="architecture")

    Undocumented.__doc__ = None  # pydantic gives no docstring of its own, but make the intent explicit
    MLPBaseConfig.register("undocumented_test_variant")(Undocumented)
    yield Undocumented
    MLPBaseConfig.unregister("undocumented_test_variant")


def test_undocumented_class_and_field_are_errors(undocumented_variant) -> None:
    with pytest.raises(DocsError) as info:
        reference_pages(builtin_only=False)
    module = undocumented_variant.__module__
    assert f"Undocumented ({module}): no docstring" in info.value.problems
    assert f"Undocumented.depth ({module}): no description (field(..., desc=...))" in info.value.problems
    assert str(info.value).startswith("cannot generate the reference docs:\n  ")
    # The committed reference covers the built-in classes only: a plugin does not change it.
    assert "Undocumented.md" not in reference_pages(builtin_only=True)


def test_documented_plugin_variant_gets_a_page() -> None:
    class Shallow(MLPConfig):
        """A test plugin's MLP."""

        type: Literal["shallow_test_variant"] = field("shallow_test_variant", tier="core", desc="The variant.")
        depth: int = field(1, tier="architecture", ge=1, desc="How deep.")

    MLPBaseConfig.register("shallow_test_variant")(Shallow)
    try:
        pages = reference_pages(builtin_only=False)
    finally:
        MLPBaseConfig.unregister("shallow_test_variant")
    assert "- **Variant of:** [`MLPBaseConfig`](MLPBaseConfig.md) — select with `type: shallow_test_variant`\n" in pages["Shallow.md"]
    assert "| `shallow_test_variant` | [`Shallow`](Shallow.md) | A test plugin's MLP. |" in pages["index.md"]
    assert "```yaml\ntype: shallow_test_variant\n```" in pages["Shallow.md"]


def test_undocumented_enum_member_is_an_error() -> None:
    class Color(DescribedEnum):
        """A test enum."""

        red = "red", "Red."
        blue = "blue"

    class Painted(MLPConfig):
        """A test plugin's MLP with a color."""

        type: Literal["painted_test_variant"] = field("painted_test_variant", tier="core", desc="The variant.")
        color: Color = field(Color.red, tier="feature", desc="The color.")

    MLPBaseConfig.register("painted_test_variant")(Painted)
    try:
        with pytest.raises(DocsError) as info:
            reference_pages(builtin_only=False)
    finally:
        MLPBaseConfig.unregister("painted_test_variant")
    assert f"Color.blue ({__name__}): no description" in info.value.problems
