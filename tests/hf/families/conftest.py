"""The family parity tests run on tiny matrices: one torch thread (tests/conftest.py's `one_thread`), since on a busy
2-core machine a second thread mostly waits (DeepSeek-V2's tests: 18 s with two threads under load, 2 s with one)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_module(one_thread):
    yield
