"""JSON Schema export."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from fastmoe_cfg.config.schema import DRAFT, json_schema
from fastmoe_cfg.config.yaml_reader import parse_yaml
from fastmoe_cfg.schemas import MLPBaseConfig
from tests.conftest import ROOT

SCHEMA = json_schema(MLPBaseConfig)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _properties(schema):
    for name, definition in schema["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            yield name, field, prop


def test_draft_and_tiers() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == DRAFT
    properties = list(_properties(SCHEMA))
    assert len(properties) > 40
    for name, field, prop in properties:
        assert prop.get("x-tier") in {"core", "architecture", "feature", "performance", "expert", "deprecated"}, (name, field)
        assert prop.get("description"), (name, field)


def test_derived_rules_and_enum_descriptions_are_exported() -> None:
    moe = SCHEMA["$defs"]["MoEMLPConfig"]
    assert moe["properties"]["activation"]["x-derived"] == "silu if gated, else gelu."
    assert any("experts_per_token + shared_experts <= experts" in rule for rule in moe["x-rules"])
    assert SCHEMA["$defs"]["RoutingType"]["x-enum-descriptions"]["sinkhorn"]


@pytest.mark.parametrize(
    "document, variant",
    [({}, "MLPConfig"), ({"type": "mlp"}, "MLPConfig"), ({"type": "moe", "experts": 4}, "MoEMLPConfig")],
)
def test_document_matches_exactly_one_variant(document, variant) -> None:
    VALIDATOR.validate(document)
    for name in ("MLPConfig", "MoEMLPConfig"):
        sub = {"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]}
        assert jsonschema.Draft202012Validator(sub).is_valid(document) == (name == variant)


def test_type_null_matches_only_the_default_variant() -> None:
    VALIDATOR.validate({"type": None, "pre_norm": {"type": None, "bias": {}}})
    assert not VALIDATOR.is_valid({"type": None, "experts": 4})


def test_nested_variant_without_type_is_the_default() -> None:
    VALIDATOR.validate({"pre_norm": {"epsilon": 1e-6, "bias": {}}})  # layer_norm has bias
    assert not VALIDATOR.is_valid({"pre_norm": {"type": "rms_norm", "bias": {}}})
    assert not VALIDATOR.is_valid({"type": "moe", "experts": "2"})
    assert not VALIDATOR.is_valid({"type": "moe", "expertz": 2})


def test_examples_validate_against_the_schema() -> None:
    from tests.test_examples import EXAMPLES  # the example plugins' configs need their plugin

    for path in EXAMPLES:
        data = parse_yaml(path.read_text()).data
        if "model" in data:  # a model file: the MLP config is under model.mlp
            data = data["model"]["mlp"]
        VALIDATOR.validate(data)


def test_cli_schema_matches(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fastmoe_cfg.cli import app

    out = tmp_path / "schema.json"
    result = CliRunner().invoke(app, ["schema", "-o", str(out)])
    assert result.exit_code == 0
    assert json.loads(out.read_text())["$defs"] == SCHEMA["$defs"]


def test_committed_schema_is_current() -> None:
    """docs/fastmoe.schema.json (what the examples point yaml-language-server at) matches the schemas.

    Regenerate with `fastmoe-cfg schema -o docs/fastmoe.schema.json`.
    """
    committed = json.loads((ROOT / "docs" / "fastmoe.schema.json").read_text())
    assert committed == json.loads(json.dumps(SCHEMA))
