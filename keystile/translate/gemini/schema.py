"""Gemini's schemas → the JSON Schema Anthropic takes for tool inputs and JSON output.

Gemini has two ways to give a schema. ``parameters`` / ``responseSchema`` are an OpenAPI 3.0
subset: upper-case ``type`` names (``OBJECT``, ``STRING``…), ``nullable``, ``propertyOrdering``,
``example``, and 64-bit integers such as ``maxItems`` written as JSON strings. They become
JSON Schema: types lower-cased, ``nullable: true`` → ``type: [t, "null"]`` (and ``null`` added to
an ``enum``), ``propertyOrdering`` / ``example`` dropped, ``format: enum`` dropped, counts made
integers. ``parametersJsonSchema`` / ``responseJsonSchema`` are JSON Schema already and pass
unchanged, except that upper-case ``type`` names are lower-cased: Gemini CLI sends its routing
call's ``responseJsonSchema`` with ``"type": "OBJECT"``, which Google accepts and JSON Schema
does not.

Anthropic's structured output (``output_config.format``) requires every object schema to say
``additionalProperties: false``; ``strict_object_schema`` adds it where a schema is silent,
which is also what Gemini's own JSON mode does (it never adds undeclared properties).
"""

from __future__ import annotations

from keystile.translate.gemini.fields import field
from keystile.translate.invalid_request import expect_dict, expect_list, expect_str, invalid

_JSON_TYPES = {
    "STRING": "string",
    "NUMBER": "number",
    "INTEGER": "integer",
    "BOOLEAN": "boolean",
    "ARRAY": "array",
    "OBJECT": "object",
    "NULL": "null",
}

# OpenAPI keys that mean nothing to JSON Schema (or to Claude) and are dropped.
_DROPPED = frozenset({"nullable", "propertyOrdering", "property_ordering", "example"})
_COUNTS = frozenset({"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"})
# The snake_case spellings Google's JSON parser also accepts, mapped to the JSON Schema key.
_SNAKE_KEYS = {
    "any_of": "anyOf",
    "min_items": "minItems",
    "max_items": "maxItems",
    "min_length": "minLength",
    "max_length": "maxLength",
    "min_properties": "minProperties",
    "max_properties": "maxProperties",
}


def openapi_to_json_schema(schema: object, field_name: str) -> dict:
    """A Gemini ``Schema`` (OpenAPI subset) as JSON Schema; raises a 400 naming the field if malformed."""
    schema = expect_dict(schema, field_name)
    out: dict = {}
    for raw_key, value in schema.items():
        key = _SNAKE_KEYS.get(raw_key, raw_key)
        at = f"{field_name}.{key}"
        if key in _DROPPED:
            continue
        if key == "type":
            kind = _json_type(value, at)
            if kind is not None:
                out["type"] = kind
        elif key == "properties":
            out["properties"] = {
                name: openapi_to_json_schema(sub, f"{at}.{name}") for name, sub in expect_dict(value, at).items()
            }
        elif key == "items":
            out["items"] = openapi_to_json_schema(value, at)
        elif key == "anyOf":
            out["anyOf"] = [openapi_to_json_schema(sub, f"{at}[{i}]") for i, sub in enumerate(expect_list(value, at))]
        elif key in _COUNTS:
            out[key] = _count(value, at)
        elif key == "format" and value == "enum":
            continue  # Gemini's marker for a string enum; JSON Schema says it with ``enum`` alone
        elif key == "required":
            out["required"] = [expect_str(name, f"{at}[{i}]") for i, name in enumerate(expect_list(value, at))]
        else:
            out[key] = value
    if field(schema, "nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif "anyOf" in out:
            out["anyOf"].append({"type": "null"})
        enum = out.get("enum")
        if isinstance(enum, list) and None not in enum:
            out["enum"] = [*enum, None]
    return out


def _json_type(value: object, at: str) -> str | None:
    name = expect_str(value, at)
    upper = name.upper()
    if upper == "TYPE_UNSPECIFIED":
        return None
    kind = _JSON_TYPES.get(upper)
    if kind is None:
        raise invalid(f"{at}: unknown schema type {name!r}"[:200], at)
    return kind


def _count(value: object, at: str) -> int:
    """Google writes int64 fields as JSON strings (``"maxItems": "5"``); both forms are accepted."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise invalid(f"{at}: expected a non-negative integer", at)


def normalize_json_schema(schema: object, field_name: str) -> dict:
    """A ``parametersJsonSchema`` / ``responseJsonSchema`` with upper-case type names lower-cased.

    Returns the input object itself when nothing needed changing (the usual case), so a
    request's tool schemas are not copied.
    """
    return _normalize(expect_dict(schema, field_name))


def _normalize(node: object) -> object:
    if isinstance(node, dict):
        changed: dict | None = None
        for key, value in node.items():
            if key == "type":
                new = _lower_type(value)
            elif isinstance(value, (dict, list)):
                new = _normalize(value)
            else:
                continue
            if new is not value:
                if changed is None:
                    changed = dict(node)
                changed[key] = new
        return node if changed is None else changed
    if isinstance(node, list):
        items = [_normalize(item) for item in node]
        return node if all(a is b for a, b in zip(items, node)) else items
    return node


def _lower_type(value: object) -> object:
    if isinstance(value, str):
        lower = _JSON_TYPES.get(value)
        return value if lower is None else lower
    if isinstance(value, list) and any(isinstance(v, str) and v in _JSON_TYPES for v in value):
        return [_JSON_TYPES.get(v, v) if isinstance(v, str) else v for v in value]
    if isinstance(value, (dict, list)):
        return _normalize(value)  # a property that happens to be named "type"
    return value


def strict_object_schema(schema: dict) -> dict:
    """``additionalProperties: false`` on every object schema that does not say otherwise."""
    out: dict = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: strict_object_schema(sub) if isinstance(sub, dict) else sub for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict_object_schema(value)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            out[key] = [strict_object_schema(sub) if isinstance(sub, dict) else sub for sub in value]
        else:
            out[key] = value
    kind = out.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in out
    if is_object and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out
