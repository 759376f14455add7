"""Generic config machinery: knows nothing about MoE and never imports torch.

Modules, each depending only on those before it: `errors` (Problem, ConfigError),
`source` (data with positions), `yaml_reader`, `yaml_writer`, `registry`
(variants, plugins), `translate` (pydantic errors in our words), `base` (Config,
field, rules), `overrides`, `loader`, `schema` (JSON Schema).
"""

from fastmoe_cfg.config.base import Config, Derived, DescribedEnum, Renamed, Rule, Tier, field
from fastmoe_cfg.config.errors import ConfigError, Problem
from fastmoe_cfg.config.loader import load_file, load_text

__all__ = ["Config", "ConfigError", "Derived", "DescribedEnum", "Problem", "Renamed", "Rule", "Tier", "field", "load_file", "load_text"]
