from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.config.loader import load_text
from fastmoe_cfg.schemas import MLPBaseConfig

ROOT = Path(__file__).resolve().parents[1]


def errors_of(text: str, *, file: str = "moe.yaml", key: str | None = None, overrides: tuple[str, ...] = ()) -> str:
    """The rendered ConfigError of a YAML text (dedented); fails if the text is valid."""
    with pytest.raises(ConfigError) as info:
        load_text(MLPBaseConfig, textwrap.dedent(text), file=file, key=key, overrides=overrides)
    return str(info.value)


def load(text: str, **kwargs):
    return load_text(MLPBaseConfig, textwrap.dedent(text), file="moe.yaml", **kwargs)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-tensor tests: a second thread mostly waits (and on a busy 2-core machine
    for long). Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
