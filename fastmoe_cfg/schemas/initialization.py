"""How a parameter is initialized: `type: normal` (default), `uniform` or `fill`."""

from typing import ClassVar, Literal

from fastmoe_cfg.config.base import Config, Rule, field


TYPE_DESCRIPTION = "The initialization method: normal (default), uniform or fill."


class InitializationConfig(Config):
    """How a parameter's values are drawn when the layer is built."""

    __default_variant__: ClassVar[str] = "normal"

    type: str | None = field(None, tier="core", desc=TYPE_DESCRIPTION)


@InitializationConfig.register("normal")
class NormalInitializationConfig(InitializationConfig):
    """Normal distribution N(mean, std²), optionally truncated to [min, max]."""

    type: Literal["normal"] = field("normal", tier="core", desc=TYPE_DESCRIPTION)

    __rules__ = (
        Rule(
            fields=("min", "max"),
            check=lambda min, max: min is None or max is None or min < max,
            message=lambda min, max: f"must satisfy min < max ({min} >= {max})",
            doc="When both are set, `min` must be smaller than `max`.",
        ),
    )

    std: float = field(1.0, tier="feature", ge=0, desc="Standard deviation.")
    mean: float = field(0.0, tier="feature", desc="Mean.")
    min: float | None = field(None, tier="feature", desc="Lower truncation bound; values below are redrawn. None: no bound.")
    max: float | None = field(None, tier="feature", desc="Upper truncation bound; values above are redrawn. None: no bound.")


@InitializationConfig.register("uniform")
class UniformInitializationConfig(InitializationConfig):
    """Uniform distribution U(mean - scale, mean + scale)."""

    type: Literal["uniform"] = field("uniform", tier="core", desc=TYPE_DESCRIPTION)

    scale: float = field(1.0, tier="feature", ge=0, desc="Half-width of the interval.")
    mean: float = field(0.0, tier="feature", desc="Centre of the interval.")


@InitializationConfig.register("fill")
class FillInitializationConfig(InitializationConfig):
    """Every value set to one constant."""

    type: Literal["fill"] = field("fill", tier="core", desc=TYPE_DESCRIPTION)

    value: float = field(tier="feature", desc="The constant (required).")
