"""Every class page ends with an example that validates, and the example really uses that class."""

from __future__ import annotations

import re

import pytest

from fastmoe_cfg.config.loader import load_text
from fastmoe_cfg.docs_gen import build_catalog
from fastmoe_cfg.docs_gen.reference import default_roots
from fastmoe_cfg.schemas.stack import root_class

CATALOG = build_catalog(default_roots())


def _example(page: str) -> str:
    match = re.search(r"^## Example\n\n[^\n]*\n\n```yaml\n(.*?)^```\n\n## Used in\n", page, re.M | re.S)
    assert match, "no example block before 'Used in'"
    return match[1]


@pytest.mark.parametrize("klass", CATALOG.classes, ids=lambda klass: klass.__name__)
def test_example_validates_and_holds_the_class(pages: dict[str, str], klass) -> None:
    text = _example(pages[f"{klass.__name__}.md"])
    config = load_text(root_class, text, file="example.yaml")  # an MLP block, or a stack (type: stack)
    sentence = re.search(r"A minimal config file that uses `\w+`( \(as `([\w.]+)` of)?", pages[f"{klass.__name__}.md"])
    path = sentence[2].split(".") if sentence[2] else []
    value = config
    for name in path:
        value = getattr(value, name)
        value = value[0] if isinstance(value, list) else value  # a list of configs (a stack's overrides)
    assert isinstance(value, klass)


def test_example_texts(pages: dict[str, str]) -> None:
    assert _example(pages["MoEMLPConfig.md"]) == "type: moe\n"
    assert _example(pages["FillInitializationConfig.md"]) == "pre_norm:\n  weight:\n    initialization:\n      type: fill\n      value: 0.0\n"
    assert _example(pages["LinearConfig.md"]) == "type: moe\nrouter: {}\n"
    page = pages["AffineNormalizationConfig.md"]
    assert (
        "A minimal config file that uses `AffineNormalizationConfig` (as `pre_norm` of [`MLPConfig`](MLPConfig.md)), "
        "here as its variant [`LayerNormalizationConfig`](LayerNormalizationConfig.md); it validates as it is:"
    ) in page
