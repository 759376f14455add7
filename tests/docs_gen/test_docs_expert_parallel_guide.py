"""The "Expert parallelism" guide: in the site, its example config valid, and the APIs it names real."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from fastmoe_cfg import load_config
from fastmoe_cfg.docs_gen import site

ROOT = Path(__file__).resolve().parents[2]
TEXT = resources.files("fastmoe_cfg.docs_gen").joinpath("assets", "expert-parallelism.md").read_text(encoding="utf-8")


def test_the_guide_is_in_the_site():
    assert site.GUIDES["expert-parallelism.md"] == "Expert parallelism"


def test_its_example_config_and_script_exist():
    config = load_config(ROOT / "examples/expert_parallel/config.yaml")
    assert config.routing == "aux_free" and (config.experts - config.shared_experts) % 4 == 0  # 2 and 4 ranks
    script = (ROOT / "examples/expert_parallel/train.py").read_text()
    for call in ("set_gradient_divide_factor(1.0)", "set_force_sum_reduction_for_comms(True)", "ignored_params=experts", "ep_mesh=mesh[\"ep\"]"):
        assert call in script and call.split("(")[0].split("=")[0] in TEXT


def test_the_apis_it_names_exist():
    pytest.importorskip("torch")
    from torch.distributed.fsdp import FSDPModule

    import fastmoe_cfg.hf as hf

    assert callable(hf.hf_state_dict) and "hf_state_dict" in hf.__all__
    for method in ("set_gradient_divide_factor", "set_force_sum_reduction_for_comms"):
        assert hasattr(FSDPModule, method) and method in TEXT
    from torch.distributed.checkpoint import state_dict

    assert callable(state_dict.set_model_state_dict) and callable(state_dict.get_model_state_dict)
