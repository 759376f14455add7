"""The guide "Coming from another framework": in the site's navigation, one section per system, configs that validate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fastmoe_cfg.config.loader import load_text
from fastmoe_cfg.docs_gen import site
from fastmoe_cfg.schemas import MLPBaseConfig, MoEMLPConfig

ASSET = "coming-from-another-framework.md"
TITLE = "Coming from another framework"
# The systems this project is measured against, as the page's section headings.
SYSTEMS = (
    "Fast-LLM",
    "MAX (Modular)",
    "attnax",
    "NeMo Automodel",
    "KempnerForge",
    "Megatron-LM",
    "torchtitan",
    "Hugging Face transformers",
)


@pytest.fixture(scope="module")
def guide() -> str:
    return site._asset(ASSET)


def sections(text: str) -> dict[str, str]:
    """Level-2 heading -> the text up to the next level-2 heading."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_guide_is_in_the_site_navigation(tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="the site's navigation is written with PyYAML, a dependency of MkDocs")
    assert site.GUIDES[ASSET] == TITLE
    stage = site._Stage(tmp_path)
    config = json.loads(stage.config_file(tmp_path / "site").read_text())
    (guides,) = [entry["Guide"] for entry in config["nav"] if "Guide" in entry]
    assert {TITLE: f"guide/{ASSET}"} in guides


def test_one_section_per_system_with_its_table_and_its_checked_source(guide: str) -> None:
    found = sections(guide)
    assert [name for name in found if name in SYSTEMS] == list(SYSTEMS)
    for name in SYSTEMS:
        body = found[name]
        # The source read: "Checked: owner/name `path`..., commit abc1234" (transformers: its version).
        assert re.search(r"^Checked: (\S+/\S+ `[^`]+`|transformers \d+\.\d+\.\d+ `[^`]+`)", body, re.M), name
        assert re.search(r"commit [0-9a-f]{7}\b|transformers \d", body), name
        assert re.search(r"^\| .+ \| ours \|\n\|---\|---\|$", body, re.M), f"{name}: no mapping table"


def test_options_we_lack_are_listed_as_not_supported(guide: str) -> None:
    found = sections(guide)
    for name in ("MAX (Modular)", "attnax", "NeMo Automodel", "KempnerForge", "Megatron-LM", "Hugging Face transformers"):
        assert "**not supported**" in found[name], name


def test_the_fields_of_this_round_that_the_guide_names_exist(guide: str) -> None:
    named = {
        "jitter_target", "jitter_distribution", "dropout", "expert_load_scaling", "bias_update_schedule",
        "bias_update_total_steps", "bias_update_rule", "bias_update_ema_decay", "correction_bias_target",
    }
    assert named <= set(MoEMLPConfig.model_fields)
    assert all(f"`{name}" in guide for name in named)
    assert "hybrid_moe" in MLPBaseConfig.variants()


def test_the_guides_configs_validate(guide: str) -> None:
    blocks = re.findall(r"^```yaml file=([\w.-]+)\n(.*?)^```$", guide, re.M | re.S)
    assert [name for name, _ in blocks] == ["from_megatron.yaml", "from_kempnerforge.yaml"]
    megatron = load_text(MLPBaseConfig, blocks[0][1], file=blocks[0][0])
    # --moe-aux-loss-coeff 0.01 with top-4: ours is a quarter of it.
    assert (megatron.auxiliary_loss_coefficient, megatron.experts_per_token) == (0.0025, 4)
    kempnerforge = load_text(MLPBaseConfig, blocks[1][1], file=blocks[1][0])
    assert kempnerforge.bias_update_rate == 0.001 and kempnerforge.bias_update_ema_decay == 0.99  # KempnerForge's fixed values
