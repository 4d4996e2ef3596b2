"""The functions an example declares and the calls its model turns make, in both services'
spellings, each checked: a declaration's name and schema, a call's function and its arguments
against the declared schema (the ``jsonschema`` library).

OpenAI: ``"tools": [{"type": "function", "function": {"name", "description", "parameters"}}]``
beside ``messages``; a call is ``{"id", "type": "function", "function": {"name", "arguments"}}``
with the arguments as JSON text. Vertex: ``"tools": [{"functionDeclarations": [{"name",
"description", "parameters"}]}]`` beside ``contents``, with ``parameters`` in its OpenAPI subset
(or ``parametersJsonSchema``); a call is a ``functionCall`` part, ``{"name", "args"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from tuneforge.data.checks import LineIssues, describe, found, path_at
from tuneforge.data.json_schema import (
    MAX_SCHEMA_DEPTH,
    first_violation,
    nesting_depth,
    openapi_to_json_schema,
    schema_problem,
)
from tuneforge.data.records import Function, ToolCall

# Both services: letters, digits, underscores and dashes (Vertex also dots), at most 64.
FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, underscores, dots or dashes, not starting with a digit"
MAX_FUNCTIONS = 128  # OpenAI's limit on a request's tools
OPENAI_TOOL = 'a tool like {"type": "function", "function": {"name": "...", "parameters": {...}}}'
VERTEX_TOOL = 'a tool like {"functionDeclarations": [{"name": "...", "parameters": {...}}]}'
NO_PARAMETERS = '{"type":"object","properties":{}}'
# A declaration's parameters, as JSON Schema or (Vertex's "parameters") its OpenAPI subset; the
# google-genai SDK sends parametersJsonSchema in snake case.
SCHEMA_KEYS = ("parametersJsonSchema", "parameters_json_schema", "parameters")
# What may describe a function besides them: its result's schema and OpenAI's strict flag
# change nothing about how it is called; Vertex's behavior asks for nothing we do differently.
DECLARATION_KEYS = frozenset(
    {"name", "description", *SCHEMA_KEYS, "strict", "response", "responseJsonSchema"}
    | {"response_json_schema", "behavior"}
)


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def function_name(value: object, path: str, issues: LineIssues) -> str | None:
    if isinstance(value, str) and FUNCTION_NAME.fullmatch(value):
        return value
    issues.error(path, f"expected a function name ({NAME_RULE}); found {found(value)}")
    return None


def declaration(value: object, path: str, issues: LineIssues, vertex: bool) -> Function | None:
    """One function's declaration: its name, description and parameters' JSON schema."""
    spec = issues.object_of(value, path, '{"name": "...", "parameters": {...}}')
    if spec is None or not issues.missing(spec, "name", path, "the function's name"):
        return None
    name = function_name(spec["name"], path_at(path, "name"), issues)
    description = spec.get("description", "")
    if not isinstance(description, str):
        issues.error(path_at(path, "description"), f"expected text; found {found(description)}")
    unknown = sorted(set(spec) - DECLARATION_KEYS)
    if unknown:
        issues.error(
            path_at(path, unknown[0]), f"unknown field {describe(unknown[0])} of a function"
        )
        return None
    key = next((k for k in SCHEMA_KEYS if k in spec), None)
    schema = spec.get(key) if key else None
    if vertex and key == "parameters" and nesting_depth(schema) <= MAX_SCHEMA_DEPTH:
        schema = openapi_to_json_schema(schema)  # Vertex's OpenAPI subset; it recurses
    if key and schema is not None and (problem := schema_problem(schema)):
        issues.error(path_at(path, key), problem)
        return None
    if name is None or not isinstance(description, str):
        return None
    return Function(name, description, NO_PARAMETERS if schema is None else compact(schema))


def openai_tools(value: object, path: str, issues: LineIssues) -> tuple[Function, ...]:
    """OpenAI's ``tools``: function tools only."""
    return _read_tools(value, path, issues, OPENAI_TOOL, _openai_tool)


def vertex_tools(value: object, path: str, issues: LineIssues) -> tuple[Function, ...]:
    """Vertex's ``tools``: each one's ``functionDeclarations``; no other kind of tool."""
    return _read_tools(value, path, issues, VERTEX_TOOL, _vertex_tool)


ToolReader = Callable[[dict, str, LineIssues], list[Function | None]]


def _read_tools(
    value: object, path: str, issues: LineIssues, example: str, read: ToolReader
) -> tuple[Function, ...]:
    tools = issues.list_of(value, path, f"a list of tools: {example}")
    functions: list[Function | None] = []
    for index, tool_value in enumerate(tools or ()):
        tool_path = path_at(path, index)
        tool = issues.object_of(tool_value, tool_path, example)
        if tool is not None:
            functions += read(tool, tool_path, issues)
    return _distinct(functions, path, issues)


def _openai_tool(tool: dict, path: str, issues: LineIssues) -> list[Function | None]:
    if tool.get("type", "function") != "function":
        issues.error(
            path_at(path, "type"),
            f'only "function" tools are supported; found {describe(tool.get("type"))}',
        )
        return []
    if not issues.missing(tool, "function", path, "the function's declaration"):
        return []
    return [declaration(tool["function"], path_at(path, "function"), issues, vertex=False)]


def _vertex_tool(tool: dict, path: str, issues: LineIssues) -> list[Function | None]:
    key = "functionDeclarations" if "functionDeclarations" in tool else "function_declarations"
    others = sorted(set(tool) - {key})
    if others:
        issues.error(
            path_at(path, others[0]),
            f"only functionDeclarations are supported; found {describe(others[0])}",
        )
        return []
    if not issues.missing(tool, key, path, "the functions' declarations"):
        return []
    declared = issues.list_of(tool[key], path_at(path, key), "a list of functions")
    return [
        declaration(spec, path_at(path_at(path, key), at), issues, vertex=True)
        for at, spec in enumerate(declared or ())
    ]


def _distinct(
    functions: list[Function | None], path: str, issues: LineIssues
) -> tuple[Function, ...]:
    declared = [f for f in functions if f is not None]
    if len(declared) > MAX_FUNCTIONS:
        issues.error(path, f"at most {MAX_FUNCTIONS} functions; found {len(declared)}")
    names = [f.name for f in declared]
    for name in sorted({n for n in names if names.count(n) > 1}):
        issues.error(path, f"the function {describe(name)} is declared twice")
    return tuple(declared)


def check_call(
    call: ToolCall,
    functions: tuple[Function, ...],
    issues: LineIssues,
    name_path: str,
    arguments_path: str,
) -> None:
    """A call names a declared function, and its arguments match that function's schema."""
    declared = {f.name: f for f in functions}
    function = declared.get(call.name)
    if function is None:
        known = ", ".join(describe(n) for n in declared) or "none: the example has no tools"
        issues.error(
            name_path,
            f"calls {describe(call.name)}, which is not declared in tools (declared: {known})",
        )
        return
    problem = first_violation(json.loads(call.arguments), function.parameters)
    if problem:
        issues.error(arguments_path, f"{problem} (the parameters of {call.name})")


def call_id(call: dict, path: str, issues: LineIssues) -> str | None:
    """A call's (or a result's) own ``id``: text, "" when it has none."""
    value = call.get("id", "")
    if isinstance(value, str):
        return value
    issues.error(path_at(path, "id"), f"expected text; found {found(value)}")
    return None


def openai_call(value: object, path: str, issues: LineIssues) -> ToolCall | None:
    """One of an assistant message's ``tool_calls``."""
    call = issues.object_of(value, path, '{"id": "...", "type": "function", "function": {...}}')
    if call is None:
        return None
    if call.get("type", "function") != "function":
        issues.error(path_at(path, "type"), f'expected "function"; found {describe(call["type"])}')
        return None
    own_id = call_id(call, path, issues)
    if own_id is None or not issues.missing(
        call, "function", path, '{"name": "...", "arguments": "{...}"}'
    ):
        return None
    function_path = path_at(path, "function")
    function = issues.object_of(call["function"], function_path, '{"name", "arguments"}')
    if function is None or not issues.missing(function, "name", function_path, "its name"):
        return None
    name = function_name(function["name"], path_at(function_path, "name"), issues)
    arguments = _openai_arguments(function.get("arguments"), function_path, issues)
    if name is None or arguments is None:
        return None
    return ToolCall(name, arguments, own_id)


def _openai_arguments(value: object, path: str, issues: LineIssues) -> str | None:
    """OpenAI's arguments: a JSON object as text."""
    where = path_at(path, "arguments")
    if value is None:
        issues.error(where, 'missing "arguments"; expected a JSON object as text, like "{}"')
        return None
    if not isinstance(value, str):
        issues.error(where, f"expected a JSON object as text; found {found(value)}")
        return None
    try:
        parsed = json.loads(value)
    except ValueError as err:
        issues.error(where, f"not JSON: {err}")
        return None
    if not isinstance(parsed, dict):
        issues.error(where, f"expected a JSON object; found {found(parsed)}")
        return None
    return compact(parsed)


def vertex_call(value: object, path: str, issues: LineIssues) -> ToolCall | None:
    """A ``functionCall`` part's call: ``{"name": ..., "args": {...}}``."""
    call = issues.object_of(value, path, '{"name": "...", "args": {...}}')
    if call is None or not issues.missing(call, "name", path, "the called function's name"):
        return None
    name = function_name(call["name"], path_at(path, "name"), issues)
    args = call.get("args", {})
    if not isinstance(args, dict):
        issues.error(path_at(path, "args"), f"expected an object; found {found(args)}")
        return None
    own_id = call_id(call, path, issues)
    if name is None or own_id is None:
        return None
    return ToolCall(name, compact(args), own_id)
