"""Hugging Face import and export.

`config_from_hf` maps a model's config (a dict from `config.json`, or a transformers config) to our
MLP config without torch; `import_moe_block` and `export_state_dict` copy weights and import torch
when called.
"""

from fastmoe_cfg.hf.mapping import Conversion, config_from_hf, convert
from fastmoe_cfg.hf.weights import export_state_dict, hf_state_dict, import_moe_block

__all__ = ["Conversion", "config_from_hf", "convert", "export_state_dict", "hf_state_dict", "import_moe_block"]
