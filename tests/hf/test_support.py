"""The support table: every MoE module of transformers 5.24 converts (a family reads it, with a parity test) or is
refused with the reason; the committed module list is the installed transformers' when the versions agree."""

from __future__ import annotations

import pytest

from fastmoe_cfg.hf.families import families
from fastmoe_cfg.hf.support import MOE_MODULES, REFUSED, TRANSFORMERS_VERSION, markdown_table, parity_test, rows
from tests.conftest import ROOT


def test_the_committed_list_is_the_installed_transformers_one():
    transformers = pytest.importorskip("transformers")
    if transformers.__version__ != TRANSFORMERS_VERSION:
        pytest.skip(f"transformers {transformers.__version__} is installed, the list is {TRANSFORMERS_VERSION}'s (refresh: python -m fastmoe_cfg.hf.support)")
    from fastmoe_cfg.hf.support import installed_moe_modules

    assert tuple(installed_moe_modules()) == MOE_MODULES


def test_every_module_converts_or_says_why_not():
    table = rows()
    assert [row.module for row in table] == list(MOE_MODULES)
    unexplained = [row.module for row in table if not row.supported and not row.text]
    assert unexplained == []
    assert sorted(set(REFUSED) - set(MOE_MODULES)) == []  # no reason for a module transformers does not have
    assert [row.module for row in table if row.supported and row.module in REFUSED] == []  # supported and refused
    for row in table:
        if row.supported:
            assert (ROOT / parity_test(row.family)).exists(), row.module


def test_at_least_25_families_convert():
    model_types = set(families())
    assert len(model_types) >= 25, sorted(model_types)
    assert {"kimi_k2", "deepseek_v2", "glm4_moe", "qwen3_next", "llama4_text", "dbrx", "phimoe"} <= model_types


def test_the_guide_shows_the_table():
    from fastmoe_cfg.docs_gen.site import guide_source

    table = markdown_table()
    assert table in guide_source("hugging-face.md")
    assert "| `mixtral` | yes | `mixtral` | `tests/hf/families/test_mixtral.py`" in table
    assert f"{sum(row.supported for row in rows())} of the {len(MOE_MODULES)} modules convert." in table


def test_every_published_config_says_where_it_comes_from():
    folder = ROOT / "tests" / "data" / "hf_families"
    sources = (folder / "SOURCES.md").read_text()
    assert [path.name for path in sorted(folder.glob("*.json")) if f"- {path.name}:" not in sources] == []
