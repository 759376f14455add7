"""Format versions: a version-1 file loads with a located warning per change, `upgrade` rewrites it keeping
comments, every example round-trips, and the docs list every change."""

from __future__ import annotations

import re
import textwrap
import warnings

import pytest

from fastmoe_cfg import load_config
from fastmoe_cfg.config.errors import ConfigError, ConfigWarning, render_warning
from fastmoe_cfg.config.loader import load
from fastmoe_cfg.config.migrations import RenamedField, Versions, migrate, upgrade_text
from fastmoe_cfg.config.yaml_reader import parse_yaml
from fastmoe_cfg.schemas import FORMAT_VERSION
from fastmoe_cfg.schemas.stack import root_class
from fastmoe_cfg.schemas.versions import CHANGES
from tests.conftest import ROOT
from tests.test_examples import EXAMPLES, KEYS


def loaded(text: str, **kwargs):
    return load(root_class, parse_yaml(textwrap.dedent(text), "old.yaml"), **kwargs)


def rendered(text: str, **kwargs) -> list[str]:
    return [render_warning(problem) for problem in loaded(text, **kwargs).warnings]


def test_version_2_is_current() -> None:
    assert FORMAT_VERSION == 2


def test_a_version_1_file_gets_one_located_warning_per_change() -> None:
    text = """\
        type: moe
        routing: aux_free
        sequence_auxiliary_loss_coefficient: 0.001
        """
    assert rendered(text) == [
        "old.yaml:2:1: auxiliary_loss_coefficient: warning: its default changed in version 2: derived from routing: 0.01 with "
        "aux_loss, else 0 (version 1: 0.01 with every routing, applied only with aux_loss, so results are unchanged; the "
        "layer's statistics call the loss a monitoring value)",
        "old.yaml:3:1: sequence_auxiliary_loss_coefficient: warning: changed meaning in version 2: the sequence-wise balance "
        "loss counts, per token, the top-k of the unbiased scores over all routed experts (DeepSeek-V3 report, eq. 18: no "
        "correction bias, no group limit); version 1 counted the routed choice, so the loss differs with routing aux_free, "
        "sinkhorn or balanced, and with expert_groups > 1",
    ]


def test_values_version_1_ignored_are_removed_with_a_warning() -> None:
    text = """\
        type: moe
        routing: balanced
        jitter_eps: 0.1
        router_dtype: input
        auxiliary_loss_coefficient: 0.01
        """
    result = loaded(text)
    assert [(problem.line, problem.path) for problem in result.warnings] == [
        (3, "jitter_eps"), (4, "router_dtype"), (5, "auxiliary_loss_coefficient")
    ]
    assert result.warnings[0].message == (
        "removed (version 2): jitter_eps other than 0 had no effect with routing: balanced, which ignores the router's "
        "scores; version 1 accepted it, version 2 refuses it"
    )
    assert result.config.jitter_eps == 0.0 and result.config.auxiliary_loss_coefficient == 0.0
    # The same file in version 2 is refused: the values are errors now.
    with pytest.raises(ConfigError, match="jitter_eps: jitter_eps 0.1 "):
        loaded("format_version: 2\n" + textwrap.dedent(text))


def test_a_current_file_and_an_unaffected_old_one_load_without_warnings() -> None:
    assert loaded("type: moe\nformat_version: 2\nrouting: sinkhorn\n").warnings == ()
    assert loaded("type: moe\nexperts: 4\n").warnings == ()  # version 1, but no change touches it
    with pytest.raises(ConfigError) as info:
        loaded("type: moe\nformat_version: 3\n")
    assert str(info.value) == "old.yaml:2:17: format_version: must be <= 2, got 3"


def test_load_config_emits_config_warnings(tmp_path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("type: moe\nrouting: sinkhorn\n")
    with pytest.warns(ConfigWarning, match=r"old.yaml:2:1: auxiliary_loss_coefficient: warning: its default changed"):
        config = load_config(path)
    assert config.auxiliary_loss_coefficient == 0.0


def test_stack_blocks_are_migrated() -> None:
    text = """\
        type: stack
        layers: 2
        mlp: {type: moe, routing: balanced, jitter_eps: 0.5}
        """
    result = loaded(text)
    assert [render_warning(problem).split(": warning")[0] for problem in result.warnings] == [
        "old.yaml:3:18: mlp.auxiliary_loss_coefficient",  # blamed on the routing that changes its default
        "old.yaml:3:37: mlp.jitter_eps",
    ]
    assert result.config.block(0).jitter_eps == 0.0


def test_upgrade_keeps_comments_and_layout() -> None:
    text = textwrap.dedent(
        """\
        # a balanced layer
        type: moe        # the variant
        experts: 8       # eight of them
        routing: balanced
        jitter_eps: 0.1  # had no effect
        z_loss_coefficient: 0.001
        """
    )
    result = load(root_class, parse_yaml(text, "old.yaml"))
    assert upgrade_text(text, result.migration, FORMAT_VERSION) == textwrap.dedent(
        """\
        # a balanced layer
        type: moe        # the variant
        format_version: 2
        experts: 8       # eight of them
        routing: balanced
        z_loss_coefficient: 0.001
        """
    )


def test_a_rename_moves_the_key_in_place_with_its_comment() -> None:
    versions = Versions(current=2, changes=(RenamedField(version=2, field="experts", old="num_experts", summary="our name"),))
    text = "type: moe\nnum_experts: 8   # the count\nexperts_per_token: 2\n"
    source, migration = migrate(parse_yaml(text, "old.yaml"), versions)
    assert source.data == {"type": "moe", "experts": 8, "experts_per_token": 2}
    assert [render_warning(problem) for problem in migration.warnings] == [
        "old.yaml:2:1: experts: warning: renamed to experts in version 2: our name"
    ]
    assert upgrade_text(text, migration, 2) == "type: moe\nformat_version: 2\nexperts: 8       # the count\nexperts_per_token: 2\n"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: str(path.relative_to(ROOT / "examples")))
def test_every_example_written_as_version_1_upgrades_to_the_same_config(path) -> None:
    key = KEYS.get(path.name)
    text = re.sub(r"(?m)^(\s*)format_version: \d+.*\n", "", path.read_text())  # the example as version 1
    name = str(path)
    old = load(root_class, parse_yaml(text, name), key=key)
    upgraded = upgrade_text(text, old.migration, FORMAT_VERSION, prefix=tuple(key.split(".")) if key else ())
    new = load(root_class, parse_yaml(upgraded, name), key=key)
    assert new.warnings == ()
    assert new.source.data["format_version"] == FORMAT_VERSION
    resolved = lambda config: {k: v for k, v in config.to_dict(resolved=True).items() if k != "format_version"}  # noqa: E731
    assert resolved(new.config) == resolved(old.config)
    comments = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
    assert all(comment in upgraded for comment in comments)


def test_the_docs_list_every_change() -> None:
    from fastmoe_cfg.docs_gen.versions import versions_page

    page = versions_page()
    for change in CHANGES:
        assert f"`{change.field}`" in page and change.summary in page
    assert f"## Version {FORMAT_VERSION}" in page


def test_no_warning_escapes_from_a_current_example() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        for path in sorted((ROOT / "examples" / "stacks").glob("*.yaml")):
            load_config(path)


def test_a_block_selected_from_a_version_2_stack_is_version_2(tmp_path, monkeypatch) -> None:
    """Fuzzed: `--key mlp` (or extends with key: mlp) of a version-2 stack read the block as version 1: version-1
    warnings for a current file, and a value version 2 refuses was dropped with a warning instead of refused."""
    from fastmoe_cfg.config.yaml_reader import read_yaml

    text = "type: stack\nformat_version: 2\nlayers: 2\nmlp: {type: moe, routing: sinkhorn}\n"
    assert loaded(text, key="mlp").warnings == ()
    refused = text.replace("sinkhorn}", "balanced, jitter_eps: 0.5}")
    with pytest.raises(ConfigError) as info:
        loaded(refused, key="mlp")
    assert str(info.value) == (
        "old.yaml:4:37: mlp.jitter_eps: jitter_eps 0.5 on the router_logits has no effect with routing: balanced, which "
        "ignores the router's scores (remove it, use jitter_target: layer_input, or use another routing)"
    )
    assert [render_warning(problem).split(": warning")[0] for problem in loaded(refused.replace("format_version: 2\n", ""), key="mlp").warnings] == [
        "old.yaml:3:18: mlp.auxiliary_loss_coefficient",
        "old.yaml:3:37: mlp.jitter_eps",
    ]  # a version-1 stack's block is still version 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stack.yaml").write_text(text)
    (tmp_path / "child.yaml").write_text("extends: {file: stack.yaml, key: mlp}\nformat_version: 2\n")
    assert load(root_class, read_yaml("child.yaml")).warnings == ()
