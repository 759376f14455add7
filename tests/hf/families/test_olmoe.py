"""olmoe: the imported layer against transformers' own block (the block's builder: tests/hf/test_import.py)."""

from __future__ import annotations

import pytest

from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export
from tests.hf.test_import import olmoe


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(implementation, tokens):
    check_block(olmoe(), implementation, tokens)


def test_export_is_the_hf_state_dict():
    check_export(olmoe())
