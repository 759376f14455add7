"""Variants and entry-point plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from fastmoe_cfg.config.base import field
from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.config.registry import ENTRY_POINT_GROUP
from fastmoe_cfg.schemas import MLPBaseConfig, MoEMLPConfig, NormalizationConfig
from tests.conftest import ROOT, errors_of, load


def test_late_registration_reaches_built_validators() -> None:
    load("type: moe\npre_norm: {type: rms_norm}\n")  # validators are built now

    @NormalizationConfig.register("scale_norm")
    class ScaleNormalizationConfig(NormalizationConfig):
        """ScaleNorm: x / ||x|| · g."""

        type: Literal["scale_norm"] = field("scale_norm", tier="core", desc="The normalization.")
        epsilon: float = field(1e-5, tier="architecture", gt=0, desc="Added to the norm.")

    try:
        config = load("type: moe\npre_norm: {type: scale_norm, epsilon: 0.5}\n")
        assert isinstance(config.pre_norm, ScaleNormalizationConfig) and config.pre_norm.epsilon == 0.5
        assert config.pre_norm.type == "scale_norm"
        assert "scale_norm" in NormalizationConfig.variants()
        assert errors_of("type: moe\npre_norm: {type: scale_nrm}\n") == (
            "moe.yaml:2:18: pre_norm.type: unknown type 'scale_nrm'; expected one of: fixed_rms_norm, layer_norm, none, rms_norm, "
            "scale_norm (did you mean scale_norm?)"
        )
    finally:
        NormalizationConfig.unregister("scale_norm")
    assert "scale_norm" not in NormalizationConfig.variants()
    with pytest.raises(ConfigError):
        load("type: moe\npre_norm: {type: scale_norm}\n")


def test_register_checks() -> None:
    with pytest.raises(TypeError, match="must subclass it"):
        NormalizationConfig.register("bad")(MoEMLPConfig)
    with pytest.raises(ValueError, match="already has a variant 'moe'"):

        @MLPBaseConfig.register("moe")
        class OtherMoE(MoEMLPConfig):
            """Another."""

            type: Literal["moe"] = field("moe", tier="core", desc="The variant.")
    with pytest.raises(TypeError, match=r"must declare its tag: type: Literal\['untagged'\]"):

        @MLPBaseConfig.register("untagged")
        class Untagged(MoEMLPConfig):
            """A variant that forgot its `type` field."""
    assert "untagged" not in MLPBaseConfig.variants()


PLUGIN = '''
"""A tiny third-party plugin: a normalization variant."""
from typing import Literal

from fastmoe_cfg.config.base import field
from fastmoe_cfg.schemas import NormalizationConfig


@NormalizationConfig.register("scale_norm")
class ScaleNormalizationConfig(NormalizationConfig):
    """ScaleNorm: x / ||x|| * g."""

    type: Literal["scale_norm"] = field("scale_norm", tier="core", desc="The normalization.")
    epsilon: float = field(1e-5, tier="architecture", gt=0, desc="Added to the norm.")
'''


def test_entry_point_plugin_is_loaded_before_the_first_lookup(tmp_path: Path) -> None:
    (tmp_path / "fastmoe_demo_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "fastmoe_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fastmoe-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nscale_norm = fastmoe_demo_plugin\n")
    good = tmp_path / "good.yaml"
    good.write_text("type: moe\npre_norm:\n  type: scale_norm\n  epsilon: 0.1\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: moe\npre_norm:\n  type: scale_nrm\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fastmoe_cfg", *args], capture_output=True, text=True, env=env)

    ok = run("validate", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == f"{good}: valid (MoEMLPConfig, type: moe)\n"
    failed = run("validate", str(bad), "--format", "json")
    assert failed.returncode == 1
    assert "expected one of: fixed_rms_norm, layer_norm, none, rms_norm, scale_norm" in failed.stdout
    assert '"suggestion": "scale_norm"' in failed.stdout


def test_dynamic_base_of_classes_inside_and_outside_a_family() -> None:
    from fastmoe_cfg.config.base import Config
    from fastmoe_cfg.schemas import InitializationConfig, LinearConfig, MLPBaseConfig, MoEMLPConfig, NormalInitializationConfig

    assert not Config.is_dynamic() and Config.dynamic_base() is None
    assert LinearConfig.dynamic_base() is None
    assert NormalInitializationConfig.dynamic_base() is InitializationConfig
    assert MoEMLPConfig.dynamic_base() is MLPBaseConfig and MLPBaseConfig.dynamic_base() is MLPBaseConfig


def test_plugins_load_only_when_a_lookup_needs_them() -> None:
    # A config of built-in variants does not scan the installed distributions; a listing of variants does.
    code = (
        "from fastmoe_cfg import load_config\n"
        "from fastmoe_cfg.config import registry\n"
        "from fastmoe_cfg.schemas import MLPBaseConfig, MoEMLPConfig\n"
        "load_config('examples/mixtral_8x7b.yaml')\n"
        "MoEMLPConfig(experts=4, pre_norm={'type': 'rms_norm'})\n"
        "print(registry.plugins_loaded())\n"
        "MLPBaseConfig.variants()\n"
        "print(registry.plugins_loaded())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout == "False\nTrue\n", result.stderr
