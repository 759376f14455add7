"""The example plugin examples/plugins/fastmoe-expert-choice, installed as a user would, and the public API it is built from.

"Installed": the `.dist-info` that `pip install` writes (its entry point read from the plugin's
pyproject.toml) and the plugin's source folder go on the path, and fastmoe_cfg reads its entry
points again, so the variant loads through the same code path as an installed distribution.
After the module the variant is unregistered and the path restored (the other tests see the
built-in variants only).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import math
import re
import subprocess
import sys
import tomllib
from fractions import Fraction
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastmoe_cfg import ConfigError, load_config, plugin
from fastmoe_cfg.cli import app
from fastmoe_cfg.config import load_text, registry
from fastmoe_cfg.config.base import field
from fastmoe_cfg.schemas import MLPBaseConfig
from fastmoe_cfg.schemas.counts import CountsNotProvided, count_layer
from tests.conftest import ROOT

PLUGIN = ROOT / "examples" / "plugins" / "fastmoe-expert-choice"
SOURCE = PLUGIN / "src"
PACKAGE = SOURCE / "fastmoe_expert_choice"
GUIDE = resources.files("fastmoe_cfg.docs_gen").joinpath("assets", "writing-a-variant.md").read_text(encoding="utf-8")
runner = CliRunner()


def write_dist_info(site: Path) -> None:
    """What `pip install examples/plugins/fastmoe-expert-choice` writes for fastmoe_cfg to find: METADATA and entry_points.txt."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project["entry-points"]
    (dist / "entry_points.txt").write_text(
        "".join(f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items()) for group, entries in groups.items())
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    write_dist_info(site)
    return site


@pytest.fixture(scope="module")
def installed(site: Path):
    """The plugin's variant, loaded from its entry point by fastmoe_cfg's registry."""
    if "expert_choice" in MLPBaseConfig.variants():  # pip-installed in this environment: nothing to do
        yield MLPBaseConfig.variants()["expert_choice"]
        return
    paths, loaded = [str(site), str(SOURCE)], registry._plugins_loaded
    sys.path[:0] = paths
    importlib.invalidate_caches()
    registry._plugins_loaded = False  # read the entry points again, as a fresh process would
    try:
        variant = MLPBaseConfig.variants()["expert_choice"]
        yield variant
    finally:
        MLPBaseConfig.unregister("expert_choice")
        registry._plugins_loaded = loaded
        for path in paths:
            sys.path.remove(path)
        for name in [name for name in sys.modules if name.split(".")[0] == "fastmoe_expert_choice"]:
            del sys.modules[name]


def cli(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "100"})


# ------------------------------------------------------------------ before it is installed (the first test of the module)
def test_without_the_plugin_its_type_is_unknown() -> None:
    if "expert_choice" in MLPBaseConfig.variants():
        pytest.skip("the plugin is pip-installed here")
    with pytest.raises(ConfigError) as error:
        load_text(MLPBaseConfig, "type: expert_choice\n", file="ec.yaml")
    assert str(error.value) == (
        "ec.yaml:1:7: type: unknown type 'expert_choice'; expected one of: hybrid_moe, mlp, moe (is the plugin that provides it installed?)"
    )


# ------------------------------------------------------------------ the public API and the docs
def test_the_guide_lists_exactly_the_public_api() -> None:
    # Adding a name to fastmoe_cfg.plugin.__all__, or removing one, fails here until the guide's table says so.
    table = GUIDE.split("<!-- public-api -->")[1].split("<!-- /public-api -->")[0]
    listed = re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)
    assert sorted(listed) == sorted(plugin.__all__) and len(listed) == len(set(listed))
    lazy = set(plugin._LAZY)
    assert lazy <= set(plugin.__all__)
    for name in plugin.__all__:  # every name resolves (the torch-side ones lazily, where torch is installed)
        if name not in lazy or importlib.util.find_spec("torch") is not None:
            assert getattr(plugin, name) is not None, name


def test_the_plugin_imports_only_public_names() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                assert not any(alias.name.split(".")[0] == "fastmoe_cfg" for alias in node.names), (path.name, node.lineno)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fastmoe_cfg":
                assert node.module == "fastmoe_cfg.plugin", (path.name, node.lineno, node.module)
                assert {alias.name for alias in node.names} <= set(plugin.__all__), (path.name, node.lineno)


# ------------------------------------------------------------------ config side: a fresh process, then the CLI
def test_a_fresh_process_loads_it_from_its_entry_point_without_torch(site: Path) -> None:
    from tests.test_no_torch import BLOCK, CHECK

    code = BLOCK + (
        f"sys.path[:0] = [{str(site)!r}, {str(SOURCE)!r}]\n"
        "import fastmoe_cfg.plugin\n"
        "from fastmoe_cfg import load_config\n"
        f"config = load_config({str(PLUGIN / 'expert_choice.yaml')!r})\n"
        "print(type(config).__name__, config.experts, config.capacity_factor)\n"
    ) + CHECK
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ExpertChoiceMLPConfig 16 1.0\n"


def test_validate_locates_errors_and_suggests_its_fields(installed, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: expert_choice\nexperts: 2\nexperts_per_token: 3\ncapacity_factr: 2\n")
    result = cli("validate", str(bad))
    assert result.exit_code == 1
    assert result.output == (
        f"{bad}:3:1: experts_per_token: must satisfy experts_per_token <= experts (3 > 2)\n"
        "    3 | experts_per_token: 3\n"
        "      | ^\n"
        f"{bad}:4:1: capacity_factr: unknown field (did you mean capacity_factor?)\n"
        "    4 | capacity_factr: 2\n"
        "      | ^\n"
        "2 problems found\n"
    )
    assert cli("validate", str(PLUGIN / "expert_choice.yaml")).exit_code == 0
    assert isinstance(load_config(PLUGIN / "train_expert_choice.yaml", key="model.mlp"), installed)


def test_explain_shows_its_counts_schema_and_init_know_it(installed) -> None:
    result = cli("explain", str(PLUGIN / "expert_choice.yaml"), "--hidden-size", "1024", "--format", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["class"] == "ExpertChoiceMLPConfig"
    assert {row["path"]: row["tier"] for row in payload["fields"]}["capacity_factor"] == "architecture"
    config = load_config(PLUGIN / "expert_choice.yaml")
    assert payload["summary"] == config.counts(1024, "bf16").to_json()
    text = cli("explain", str(PLUGIN / "expert_choice.yaml"), "--hidden-size", "1024").output
    assert re.search(rf"total parameters:\s+{payload['summary']['total_parameters']:,}\n", text), text
    assert '"expert_choice"' in cli("schema").output
    starter = cli("init", "--type", "expert_choice").output
    assert "type: expert_choice" in starter and "# capacity_factor: 1.0" in starter


def test_the_docs_site_documents_it_and_the_committed_pages_do_not(installed) -> None:
    from fastmoe_cfg.docs_gen.catalog import build_catalog
    from fastmoe_cfg.docs_gen.reference import default_roots, reference_pages

    site_catalog = build_catalog(default_roots(), builtin_only=False)  # what `docs build` documents (site.py)
    site_pages = reference_pages(catalog=site_catalog)
    page = site_pages["ExpertChoiceMLPConfig.md"]
    assert "`expert_choice` → [`ExpertChoiceMLPConfig`](ExpertChoiceMLPConfig.md)" in site_pages["MLPBaseConfig.md"]
    assert "select with `type: expert_choice`" in page and "- **Module:** `fastmoe_expert_choice`" in page
    for tier in ("core", "architecture", "feature"):
        assert f'<span class="tier tier-{tier}">{tier}</span>' in page
    assert '<a id="capacity_factor"></a>' in page and "experts_per_token <= experts" in page
    committed = build_catalog(default_roots())  # docs generate / docs check: built-ins only, with the plugin installed too
    assert installed not in committed.classes
    assert "expert_choice" not in reference_pages(catalog=committed)["MLPBaseConfig.md"]


def test_a_variant_without_the_counts_hook_gets_one_line(tmp_path: Path) -> None:
    from typing import Literal

    class NoCounts(MLPBaseConfig):
        """A plugin's variant that defines no counts(hidden_size, dtype)."""

        type: Literal["no_counts_test_variant"] = field("no_counts_test_variant", tier="core", desc="The MLP variant.")

    MLPBaseConfig.register("no_counts_test_variant")(NoCounts)
    try:
        path = tmp_path / "no_counts.yaml"
        path.write_text("type: no_counts_test_variant\n")
        with pytest.raises(CountsNotProvided):
            count_layer(load_config(path), 64)
        line = "counts not provided by no_counts_test_variant (its config defines no counts(hidden_size, dtype) method)"
        text = cli("explain", str(path), "--hidden-size", "64")
        assert text.exit_code == 0 and " ".join(text.output.split()).endswith(line)  # wrapped at the terminal's width
        data = json.loads(cli("explain", str(path), "--hidden-size", "64", "--format", "json").output)
        assert data["summary"] is None and data["summary_missing"] == line
    finally:
        MLPBaseConfig.unregister("no_counts_test_variant")


# ------------------------------------------------------------------ the layer
try:
    import torch
except ImportError:  # the config tests above run without torch
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="the layer needs torch")


def tiny(installed, **values):
    data = {"experts": 4, "experts_per_token": 1, "capacity_factor": 1.5, "intermediate_size": 6, **values}
    return installed(**data)


def reference(layer, x_TH, mask_T):
    """Zhou et al. eq. 1-3 in float64, one expert and one token at a time."""
    config = layer.config
    x_TH = torch.where(mask_T.unsqueeze(1), x_TH.double(), 0)
    scores_TE = torch.softmax(x_TH @ layer.router.weight.double().t(), dim=-1)
    tokens, experts, inner = x_TH.shape[0], config.experts, config.intermediate_size
    capacity = min(tokens, math.ceil(Fraction(repr(config.capacity_factor)) * tokens * config.experts_per_token / experts))
    out = [x_TH.new_zeros(x_TH.shape[1]) for _ in range(tokens)]
    for e in range(experts):
        real = [t for t in range(tokens) if mask_T[t]]
        for t in sorted(real, key=lambda t: -scores_TE[t, e].item())[:capacity]:
            h = layer.experts.layer_1.weight[e].double() @ x_TH[t]
            a = torch.nn.functional.silu(h[:inner]) * h[inner:]
            out[t] = out[t] + scores_TE[t, e] * (layer.experts.layer_2.weight[e].double() @ a)
    return torch.stack(out)


@needs_torch
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("real", [7, 2], ids=["mask", "fewer-real-tokens-than-capacity"])
def test_the_layer_equals_the_float64_reference(installed, dtype, tolerance, real) -> None:
    dtype = getattr(torch, dtype)
    torch.manual_seed(0)
    layer = tiny(installed).build(8, dtype=dtype)
    x = torch.randn(10, 8, dtype=dtype)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[torch.randperm(10)[:real]] = True
    x = torch.where(mask.unsqueeze(1), x, float("nan")).requires_grad_()  # padding may hold anything
    expected_x = x.detach().double().requires_grad_()
    out = layer(x, mask)
    expected = reference(layer, expected_x, mask)
    torch.testing.assert_close(out.double(), expected, atol=tolerance, rtol=tolerance)
    weight = torch.randn(10, 8, dtype=torch.float64)
    (out.double() * weight).sum().backward()
    (expected * weight).sum().backward()
    torch.testing.assert_close(x.grad.double(), torch.where(mask.unsqueeze(1), expected_x.grad, 0), atol=tolerance, rtol=tolerance)
    capacity = min(real, layer.capacity(10))  # capacity ⌈1.5 · 10 · 1 / 4⌉ = 4; masked tokens never chosen
    assert layer.stats["tokens_per_expert"].tolist() == [capacity] * 4


@needs_torch
def test_it_compiles_as_one_graph(installed) -> None:
    torch.manual_seed(0)
    layer = tiny(installed, experts_per_token=2, pre_norm={"type": "rms_norm"}, z_loss_coefficient=0.01).build(8)
    x, mask = torch.randn(2, 6, 8), torch.rand(2, 6) > 0.3
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    eager_x, compiled_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.testing.assert_close(compiled(compiled_x, mask), layer(eager_x, mask))
    layer(eager_x, mask).square().sum().backward()
    compiled(compiled_x, mask).square().sum().backward()
    torch.testing.assert_close(compiled_x.grad, eager_x.grad)


@needs_torch
def test_meta_build_then_reset_equals_a_direct_build_and_counts_match(installed) -> None:
    config = tiny(installed, pre_norm={"type": "rms_norm"}, post_norm={"type": "layer_norm"}, lr_scale=0.5)
    torch.manual_seed(1)
    direct = config.build(8)
    with torch.device("meta"):
        late = config.build(8)
    late.to_empty(device="cpu")
    torch.manual_seed(1)
    late.reset_parameters()
    for (name, a), (_, b) in zip(direct.state_dict().items(), late.state_dict().items()):
        assert torch.equal(a, b), name
    counts = count_layer(config, 8)
    assert counts.total_parameters == sum(parameter.numel() for parameter in direct.parameters())
    assert direct.lr_scales == {name: 0.5 for name, _ in direct.named_parameters()}


@needs_torch
def test_train_moe_lm_trains_it(installed, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from tests.examples.test_train_moe_lm import TINY, run

    config = tmp_path / "expert_choice.yaml"
    config.write_text(TINY.replace("{type: moe, experts: 4, experts_per_token: 2,", "{type: expert_choice, experts: 4, experts_per_token: 2,")
                      .replace(", add_linear_biases: false", ""))
    spec = importlib.util.spec_from_file_location("train_moe_lm", ROOT / "examples" / "train_moe_lm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert run(module, "--config", str(config), "--steps", "2", "--eval-batches", "1", "--out", str(tmp_path / "run")) == 0
    finally:
        del sys.modules[spec.name]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["mlp_config"]["type"] == "expert_choice" and len(metrics["steps"]) == 2
    assert all(math.isfinite(step["loss"]) for step in metrics["steps"])
