"""JSON Schema export (draft 2020-12) of a config class.

Every property carries `x-tier`; derived defaults carry `x-derived` and
classes with cross-field rules `x-rules` (each in words). A dynamic base is a
`oneOf` of its variants: non-default variants require `type`, so a document
without `type` matches exactly the default variant. Editors use it through
yaml-language-server (`# yaml-language-server: $schema=...`).
"""

from __future__ import annotations

import json
from typing import Any

from fastmoe_cfg.config.base import Config, all_config_classes

DRAFT = "https://json-schema.org/draft/2020-12/schema"


# Other root classes a file may hold instead of `root` (a stack of MLP blocks), and the keys every root
# document accepts beside its fields (`extends`): registered by the schemas.
_OTHER_ROOTS: dict[type, list[type]] = {}
_ROOT_KEYS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}


def register_root(root: type[Config], other: type[Config]) -> None:
    """A file that `root` reads may hold an `other` document instead (told apart by `type`)."""
    _OTHER_ROOTS.setdefault(root, [])
    if other not in _OTHER_ROOTS[root]:
        _OTHER_ROOTS[root].append(other)


def register_root_key(name: str, schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    """A key every root document accepts beside its fields (`extends`), with its schema and the $defs it uses."""
    _ROOT_KEYS[name] = (schema, definitions)


def json_schema(root: type[Config], *, title: str | None = None) -> dict[str, Any]:
    schema = root.model_json_schema()
    for other in _OTHER_ROOTS.get(root, []):
        other_schema = other.model_json_schema()
        other_definitions = other_schema.pop("$defs", {})
        schema.setdefault("$defs", {}).update(other_definitions)
        schema["$defs"][other.__name__] = other_schema
        if "oneOf" in schema:
            schema["oneOf"].append({"$ref": f"#/$defs/{other.__name__}"})
    classes = {klass.__name__: klass for klass in all_config_classes()}
    definitions = schema.get("$defs", {})
    roots = [item["$ref"].rsplit("/", 1)[-1] for item in schema.get("oneOf", []) if "$ref" in item]
    for name, (key_schema, key_definitions) in _ROOT_KEYS.items():
        definitions.update(key_definitions)
        for root_name in roots:  # the variants' definitions serve nested blocks too: `extends` is read at the root only
            definitions[root_name].setdefault("properties", {})[name] = key_schema
    for name, definition in [*definitions.items(), (root.__name__, schema)]:
        klass = classes.get(name)
        if klass is not None and "properties" in definition:
            _annotate(klass, definition)
    _held_variants(definitions, classes)
    result: dict[str, Any] = {"$schema": DRAFT, "title": title or root.__name__}
    if root.__doc__:
        result["description"] = " ".join(root.__doc__.split())
    result.update((key, value) for key, value in schema.items() if key not in ("title", "description"))
    return result


def _annotate(klass: type[Config], definition: dict[str, Any]) -> None:
    variant = klass.__variant_name__
    if variant is not None:
        base = klass.dynamic_base()
        if base is not None and variant != base.__default_variant__:
            required = definition.setdefault("required", [])
            if "type" not in required:
                required.insert(0, "type")
        elif base is not None and "type" in definition["properties"]:
            # `type: null` selects the default variant, as the loader does.
            type_schema = definition["properties"]["type"]
            const = {key: type_schema.pop(key) for key in ("const", "type") if key in type_schema}
            type_schema["anyOf"] = [const, {"type": "null"}]
    for derived in klass.derived_defaults():
        if derived.field in definition["properties"]:
            definition["properties"][derived.field]["x-derived"] = derived.doc
    rules = [rule.doc for rule in klass.rules()]
    if rules:
        definition["x-rules"] = rules


HELD = "_held"  # suffix of the definition of a variant held directly by a field (its `type` may be left out)


def _held_variants(definitions: dict[str, Any], classes: dict[str, type[Config]]) -> None:
    """A field that holds one variant itself (`routed: MoEMLPConfig`, not a union of variants) accepts it without
    `type`, as the loader does: such a reference points at a copy of the variant's definition that does not require it."""
    tagged = {
        name for name, definition in definitions.items() if "type" in definition.get("required", []) and getattr(classes.get(name), "__variant_name__", None)
    }

    def walk(node: Any, in_union: bool) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, in_union)
            return
        if not isinstance(node, dict):
            return
        target = node.get("$ref", "").rsplit("/", 1)[-1]
        if target in tagged and not in_union:
            held = target + HELD
            if held not in definitions:
                copy = json.loads(json.dumps(definitions[target]))
                copy["required"] = [name for name in copy["required"] if name != "type"]
                if not copy["required"]:
                    del copy["required"]
                definitions[held] = copy
            node["$ref"] = f"#/$defs/{held}"
        for key, value in node.items():
            walk(value, key == "oneOf")

    for name in list(definitions):
        walk(definitions[name].get("properties", {}), False)
