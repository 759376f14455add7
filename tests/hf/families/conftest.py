"""The family parity tests run on tiny matrices: one torch thread (as tests/test_field_effects.py), since on a busy
2-core machine a second thread mostly waits (DeepSeek-V2's tests: 18 s with two threads under load, 2 s with one)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
