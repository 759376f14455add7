"""fastmoe_cfg: a configuration system for mixture-of-experts MLP layers.

`load_config("moe.yaml")` returns the validated config (`MLPConfig` or
`MoEMLPConfig`, chosen by `type:`; a `StackConfig` for `type: stack`, a whole
model's blocks). Importing this package never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from fastmoe_cfg.config.errors import ConfigError, Problem

if TYPE_CHECKING:
    from fastmoe_cfg.schemas import MLPBaseConfig, StackConfig

__version__ = "0.1.0"
__all__ = ["ConfigError", "Problem", "load_config", "__version__"]


def load_config(path: str | Path, *, key: str | None = None, overrides: Iterable[str] = ()) -> MLPBaseConfig | StackConfig:
    """Load and validate an MLP config (or a stack of them, `type: stack`) from YAML.

    A file of an older format version (no `format_version`: version 1) loads with a
    `ConfigWarning` per change since, each naming the file and line.

    Args:
        path: the YAML file.
        key: dotted path of the MLP config inside the file (`"model.mlp"`); None: the whole file.
        overrides: `KEY=VALUE` strings applied after selecting `key` (`"experts=8"`).

    Raises:
        ConfigError: listing every problem, each with file:line:col.
    """
    from fastmoe_cfg.config.loader import load_file
    from fastmoe_cfg.schemas.stack import root_class

    return load_file(root_class, path, key=key, overrides=overrides)
