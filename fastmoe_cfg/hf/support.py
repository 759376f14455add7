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
REFUSED: dict[str, str] = {
    "deepseek_v4": (
        "DeepseekV4SparseMoeBlock scores with scoring_func sqrtsoftplus (sqrt(softplus(logits))), routes its first hash_moe "
        "layers by a token-id table, and clamps its SwiGLU: none of the three is ours."
    ),
    "ernie4_5_vl_moe": (
        "Ernie4_5_VLMoeMoeBlock sends text and image tokens (by moe_mm_token_type_ids) to two separate expert sets, "
        "text_moe and vision_moe, each with its own router: our layer has one router."
    ),
    "glm5_next": (
        "Glm5NextTextMoE's experts and shared experts clamp the gate above and up to ±swiglu_limit before silu(gate)·up: "
        "our activation_limit only clamps gpt_oss_glu, not silu."
    ),
    "hy_v4": (
        "HYV4MoE's routed experts clamp the gate above and up to ±swiglu_limit before silu(gate)·up (its shared experts "
        "do not): our activation_limit only clamps gpt_oss_glu, not silu."
    ),
    "hy_v4_vl": (
        "HYV4VLMoE (HYV4MoE's block) clamps the routed experts' gate above and up to ±swiglu_limit before silu(gate)·up: "
        "our activation_limit only clamps gpt_oss_glu, not silu."
    ),
    "inkling": (
        "InklingMoE's router also scores the shared experts: their sigmoids, normalized with the k chosen ones and × a "
        "learnable global_scale, weight them; ours give shared experts weight 1."
    ),
    "inkling2": (
        "Inkling2SparseMoeBlock's experts use a softcapped SwiGLU, c·tanh(gate/c)·σ(gate)·c'·tanh(up/c') "
        "(mlp_gate_softcap, mlp_up_softcap): an activation our layer lacks."
    ),
    "inkling2_loop": (
        "Inkling2LoopSparseMoeBlock's experts use a softcapped SwiGLU, c·tanh(gate/c)·σ(gate)·c'·tanh(up/c') "
        "(mlp_gate_softcap, mlp_up_softcap): an activation our layer lacks."
    ),
    "jetmoe": (
        "JetMoeMoE adds one learnable bias [hidden] to the weighted sum of its experts, where our biases are per "
        "expert; its attention is JetMoeMoA, a mixture of attention experts."
    ),
    "kolibri1": (
        "Kolibri1SparseMoeBlock picks the top-k of the router logits + e_score_correction_bias and weights by the "
        "sigmoid of the unbiased logits: our correction bias acts on the scores, or on the weights too."
    ),
    "longcat_flash": (
        "LongcatFlashExperts adds zero_expert_num identity (zero-computation) experts that the router chooses and weighs; "
        "our experts are all MLPs."
    ),
    "muse_spark": (
        "MuseSparkMoE runs its experts in a projected space (pre_expert_proj to moe_hidden_size, a centered RMSNorm, "
        "post_expert_proj back) and RMS-normalizes each expert's output: ours map hidden to hidden."
    ),
    "nllb_moe": (
        "NllbMoeSparseMLP trains with GShard top-2 capacity (a fixed expert_capacity, top-1 choices placed before any "
        "top-2, weights renormalized after the drops) and per-expert token dropout: we lack these."
    ),
    "step3p7": (
        "Step3p7SparseMoeBlock's experts compute min(silu(gate), limit)·clamp(up, ±limit), limit from swiglu_limits "
        "(swiglu_limits_shared for the shared expert): our activation_limit only clamps gpt_oss_glu."
    ),
    "switch_transformers": (
        "SwitchTransformersSparseMLP drops tokens beyond a fixed expert_capacity (a token count, 64 by default) counted "
        "along each sequence, in inference too: our capacity is a factor over the batch's tokens."
    ),
    "zaya": (
        "ZayaSparseMoeBlock's router is an MLP (down_proj, RMSNorm, two GELU layers) that also reads the previous "
        "layer's router state, and can choose a null 'skip' expert: our router is one linear."
    ),
}


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
