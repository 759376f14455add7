"""Generic config machinery: knows nothing about MoE and never imports torch."""

from fastmoe_cfg.config.base import Config, Derived, DescribedEnum, Rule, Tier, field
from fastmoe_cfg.config.errors import ConfigError, Problem
from fastmoe_cfg.config.loader import load_file, load_text

__all__ = ["Config", "ConfigError", "Derived", "DescribedEnum", "Problem", "Rule", "Tier", "field", "load_file", "load_text"]
