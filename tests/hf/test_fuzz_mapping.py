"""Fuzzing `config_from_hf`: published configs with random keys set to random JSON values convert to a valid
config whose YAML loads back equal, or raise a ConfigError (a TypeError only for a non-mapping input); never
anything else, and never slowly (huge layer counts and lists are bounded)."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.config.loader import load_text
from fastmoe_cfg.hf.mapping import conversion_yaml, convert
from fastmoe_cfg.schemas import MLPBaseConfig
from tests.conftest import ROOT

SCALE = int(os.environ.get("FASTMOE_PROPERTY_SCALE", "1"))
CONFIGS = {path.stem: json.loads(path.read_text()) for path in sorted((ROOT / "tests" / "data" / "hf_configs").glob("*.json"))}
KEYS = sorted({key for data in CONFIGS.values() for key in data} | {key for key in CONFIGS["gemma4_26b_a4b"]["text_config"]})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.integers(min_value=-3, max_value=300),
    st.sampled_from([10**400, -(10**400), 2**63, 2**1024]),  # beyond a float and a 64-bit integer
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["silu", "gelu", "sigmoid", "softmax", "noaux_tc", "mixtral", "gemma4", "gemma4_text", "deepseek_v3"]),
)
values = st.recursive(scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3), max_leaves=6)


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(CONFIGS)))
    data = json.loads(json.dumps(CONFIGS[name]))
    target = data["text_config"] if "text_config" in data and draw(st.booleans()) else data
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(KEYS) | st.integers(0, 3))  # an integer key: not a config.json, still a dict
        if draw(st.integers(0, 5)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(values)
    return data, draw(st.none() | st.integers(0, 70))


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_configs_convert_or_raise_config_error(case):
    data, layer = case
    try:
        conversion = convert(data, layer)
    except ConfigError as exc:
        assert exc.problems and all(problem.message for problem in exc.problems)
        return
    assert conversion.config is not None and 0 <= conversion.layer < conversion.layers
    text = conversion_yaml(conversion, "fuzz")
    assert load_text(MLPBaseConfig, text, file="converted.yaml") == conversion.written_config()
