"""Which MoE models of Hugging Face transformers convert, and why the others do not: the support table. No torch.

`MOE_MODULES` is the list of transformers' modeling modules that define an experts class (a class named
`...Experts`), taken from transformers 5.24.0; it is committed, so that a newer transformers does
not change the table or break the tests. Refresh it with:

    python -m fastmoe_cfg.hf.support

which prints the list found in the installed transformers (then paste it here and give each new module a family
or a `REFUSED` reason). A module is supported when a family of `fastmoe_cfg.hf.families` lists it in its
`hf_modules`; every other one has its reason in `REFUSED`.
"""

from __future__ import annotations

from dataclasses import dataclass

TRANSFORMERS_VERSION = "5.24.0"
MOE_MODULES = (
    "afmoe", "aria", "axk1", "axk2", "bailing_hybrid", "beam", "cohere2_moe", "dbrx", "deepseek_ocr2", "deepseek_v2",
    "deepseek_v3", "deepseek_v32", "deepseek_v4", "diffusion_gemma", "dots1", "dots3_note", "ernie4_5_moe",
    "ernie4_5_vl_moe", "exaone_moe", "flex_olmo", "flint", "gemma4", "glm4_moe", "glm4_moe_lite", "glm4v_moe",
    "glm5_next", "glm_moe_dsa", "gpt_oss", "granitemoe", "granitemoe_swa", "granitemoehybrid", "granitemoeshared",
    "hunyuan_v1_moe", "hy_v3", "hy_v4", "hy_v4_vl", "inkling", "inkling2", "inkling2_loop", "jamba", "jetmoe",
    "kimi_linear", "kolibri1", "laguna", "lara_mini", "lfm2_moe", "llama4", "longcat_flash", "mellum",
    "mimo_v2_flash", "minimax", "minimax_m2", "minimax_m3_vl", "mistral4", "mistral_large4", "mixtral", "muse_spark",
    "nemotron_h", "nllb_moe", "olmoe", "openai_privacy_filter", "phimoe", "qwen2_moe", "qwen3_5_moe", "qwen3_moe",
    "qwen3_next", "qwen3_omni_moe", "qwen3_vl_moe", "qwen4_exp", "solar_open", "step3p7", "switch_transformers",
    "unlimited_ocr", "zaya",
)

# module -> why it does not convert: the feature of its MoE block that the schema lacks (or why it is not a model
# whose MLP this package describes).
REFUSED: dict[str, str] = {}


@dataclass(frozen=True)
class Row:
    module: str  # transformers' modeling module (models/<module>/modeling_<module>.py)
    supported: bool
    family: str | None  # our family (its first model_type) when supported
    model_types: tuple[str, ...]  # the model_types it reads, its multimodal wrappers included
    text: str  # the family's note, or the reason it is refused


def rows() -> list[Row]:
    """One row per module of `MOE_MODULES`, in order."""
    from fastmoe_cfg.hf.families import families

    covering = {}
    for family in families().values():
        for module in family.hf_modules or (*family.model_types, *(family.wrappers or {})):
            covering[module] = family
    table = []
    for module in MOE_MODULES:
        family = covering.get(module)
        if family is not None:
            types = (*family.model_types, *(family.wrappers or {}))
            table.append(Row(module, True, family.name, types, family.note))
        else:
            table.append(Row(module, False, None, (), REFUSED.get(module, "")))
    return table


def parity_test(family: str) -> str:
    """The test file that compares the family's imported layer with transformers' own block."""
    from fastmoe_cfg.hf.families import family_of

    return f"tests/hf/families/test_{family_of(family).module}.py"


def markdown_table() -> str:
    """The support table of the Hugging Face guide."""
    lines = [
        f"| transformers module ({TRANSFORMERS_VERSION}) | converts | model_type | parity test, or why not |",
        "|---|---|---|---|",
    ]
    for row in rows():
        if row.supported:
            types = ", ".join(f"`{name}`" for name in row.model_types)
            lines.append(f"| `{row.module}` | yes | {types} | `{parity_test(row.family)}`{': ' + row.text if row.text else ''} |")
        else:
            lines.append(f"| `{row.module}` | no | | {row.text} |")
    supported = sum(row.supported for row in rows())
    return "\n".join(lines) + f"\n\n{supported} of the {len(MOE_MODULES)} modules convert."


def installed_moe_modules() -> list[str]:
    """The modules of the installed transformers that define an experts class (what `MOE_MODULES` was taken from)."""
    import os
    import re

    import transformers

    root = os.path.join(os.path.dirname(transformers.__file__), "models")
    found = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, f"modeling_{name}.py")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as stream:
                if re.search(r"^class \w*Experts\(", stream.read(), re.MULTILINE):
                    found.append(name)
    return found


if __name__ == "__main__":
    import transformers

    print(f"# transformers {transformers.__version__}: modeling modules that define an experts class")
    print(repr(tuple(installed_moe_modules())))
