"""JSON schemas as the services write them: Vertex's OpenAPI subset turned into JSON Schema, a
bound on how deeply one may nest, and checking a value against one (the ``jsonschema``
library: a function's arguments in tuning data and in tool calls)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from tuneforge.errors import InvalidArgument

MAX_SCHEMA_DEPTH = 64


def check_depth(schema: Any, param: str) -> None:
    """An InvalidArgument naming ``param`` when ``schema`` nests deeper than MAX_SCHEMA_DEPTH:
    checked before anything walks it recursively."""
    if nesting_depth(schema) > MAX_SCHEMA_DEPTH:
        raise InvalidArgument(f"{param}: nested deeper than {MAX_SCHEMA_DEPTH} levels", param)


def nesting_depth(value: Any) -> int:
    """How deeply ``value`` nests (up to just past MAX_SCHEMA_DEPTH), counted without
    recursion: a hostile schema may be deep."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_SCHEMA_DEPTH:
            break
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        pending.extend((child, depth + 1) for child in children)
    return deepest


# Vertex's Schema (an OpenAPI 3.0 subset) in JSON Schema's words: types in lower case,
# ``nullable`` as a union with null, ``propertyOrdering`` as the order of ``properties``, no
# properties beyond those declared.
OPENAPI_ONLY_KEYS = {"nullable", "propertyOrdering", "property_ordering", "example"}
# google.ai.generativelanguage's Type numbers: the legacy SDK sends enums as integers.
TYPE_NUMBERS = {1: "STRING", 2: "NUMBER", 3: "INTEGER", 4: "BOOLEAN", 5: "ARRAY", 6: "OBJECT"}


def openapi_to_json_schema(schema: Any) -> Any:
    """Vertex's ``Schema`` as JSON Schema. Call ``check_depth`` first: this recurses."""
    if isinstance(schema, list):
        return [openapi_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {
        key: openapi_to_json_schema(value)
        for key, value in schema.items()
        if key not in OPENAPI_ONLY_KEYS and key != "properties"
    }
    if converted.get("format") == "enum":  # Vertex marks a string enum so; JSON Schema needs not
        del converted["format"]
    kind = schema.get("type")
    kind = TYPE_NUMBERS.get(kind, kind) if isinstance(kind, int) else kind
    if isinstance(kind, str):
        converted["type"] = kind.lower()
        if schema.get("nullable"):
            converted["type"] = [kind.lower(), "null"]
    if isinstance(properties := schema.get("properties"), dict):
        order = schema.get("propertyOrdering") or schema.get("property_ordering") or []
        order = [n for n in order if isinstance(n, str) and n in properties]
        names = order + [n for n in properties if n not in order]
        converted["properties"] = {n: openapi_to_json_schema(properties[n]) for n in names}
        # Vertex's objects have only the properties they declare (its Schema cannot say
        # otherwise); JSON Schema would let a model add any others.
        converted.setdefault("additionalProperties", False)
    return converted


def schema_problem(schema: Any) -> str | None:
    """What makes ``schema`` not a JSON schema, or None when it is one."""
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict | bool):
        return "expected a JSON schema (an object)"
    if nesting_depth(schema) > MAX_SCHEMA_DEPTH:
        return f"nested deeper than {MAX_SCHEMA_DEPTH} levels"
    try:
        _validator(json.dumps(schema, separators=(",", ":")))
    except SchemaError as err:
        return f"not a JSON schema: {err.message}"
    return None


def first_violation(value: Any, schema: str) -> str | None:
    """Why ``value`` does not match ``schema`` (compact JSON text that ``schema_problem``
    accepted), naming where inside it; None when it matches."""
    errors = sorted(_validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where.lstrip('.') + ': ' if where else ''}{error.message}"


@lru_cache(maxsize=256)
def _validator(schema: str) -> Any:
    from jsonschema.validators import validator_for

    parsed = json.loads(schema)
    cls = validator_for(parsed)
    cls.check_schema(parsed)
    return cls(parsed)
