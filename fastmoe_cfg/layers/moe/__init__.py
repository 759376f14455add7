"""The mixture-of-experts layer: routing (router.py), losses (losses.py), expert execution (dispatch.py)."""

from fastmoe_cfg.layers.moe.layer import MoEMLP

__all__ = ["MoEMLP"]
