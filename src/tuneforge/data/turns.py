"""Reading the turns of a conversation in the two dialects the formats use.

Vertex/Gemini writes ``contents`` of ``{"role": "user"|"model", "parts": [{"text": ...}]}``;
OpenAI writes ``messages`` of ``{"role": "system"|"user"|"assistant", "content": ...}``. Both
follow one rule, checked in :func:`build_conversation`: turns alternate user, model, ...
starting with user, and end as the task needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from tuneforge.data.checks import LineIssues, describe, found, join_keys, name_of, path_at
from tuneforge.data.records import Conversation, Role, Turn

Ending = Literal["model", "user", "any"]  # how a conversation must end

# Part keys that carry something other than text (Gemini parts; proto JSON accepts both spellings).
NON_TEXT_PART_KEYS = frozenset(
    {"inlineData", "fileData", "functionCall", "functionResponse", "executableCode"}
    | {"codeExecutionResult", "inline_data", "file_data", "function_call", "function_response"}
    | {"executable_code", "code_execution_result"}
)

VERTEX_PART = 'a part like {"text": "..."}'
VERTEX_TURN = 'a turn like {"role": "user", "parts": [{"text": "..."}]}'
VERTEX_CONTENTS = 'a list of turns like [{"role": "user", "parts": [{"text": "..."}]}, ...]'
OPENAI_MESSAGES = 'a list of messages like [{"role": "user", "content": "..."}, ...]'
OPENAI_MESSAGE = 'a message like {"role": "user", "content": "..."}'
OPENAI_RESPONSE = 'a list with one message: [{"role": "assistant", "content": "..."}]'

EXPECTED_OPENAI_ROLES = '"system", "user" or "assistant"'
OPENAI_ROLES: dict[str, Role | Literal["system"]] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "model",
}


@dataclass(frozen=True)
class RawTurn:
    role: str  # "user" or "model" once checked
    text: str
    weight: int
    path: str  # where the turn is, for messages about its position


@dataclass(frozen=True)
class Dialect:
    """How a format names its turns, for messages."""

    turn: str  # "turn" or "message"
    model_role: str  # "model" or "assistant"


VERTEX = Dialect("turn", "model")
OPENAI = Dialect("message", "assistant")


def a_or_an(role: str) -> str:
    return "an" if role == "assistant" else "a"  # "a user", "a model", "an assistant"


def build_conversation(
    system: str | None, turns: list[RawTurn], issues: LineIssues, dialect: Dialect, ending: Ending
) -> Conversation | None:
    """Check the turns alternate user/model starting with user and end as required."""
    for index, turn in enumerate(turns):
        expected = "user" if index % 2 == 0 else "model"
        if turn.role != expected:
            wanted = "user" if expected == "user" else dialect.model_role
            issues.error(
                path_at(turn.path, "role"),
                f'expected {a_or_an(wanted)} "{wanted}" {dialect.turn} here; {dialect.turn}s must'
                f' alternate "user", "{dialect.model_role}", "user", ... starting with "user"',
            )
            return None  # the turns after it are out of order only because of this one
    if not turns or issues.has_errors:
        return None
    last = turns[-1]
    if ending == "model" and last.role == "user":
        issues.error(
            last.path,
            f'the last {dialect.turn} is a "user" {dialect.turn}; a supervised example must end'
            f' with {a_or_an(dialect.model_role)} "{dialect.model_role}" {dialect.turn}:'
            " the response to learn",
        )
        return None
    if ending == "user" and last.role == "model":
        issues.error(
            last.path,
            f"the prompt ends with {a_or_an(dialect.model_role)}"
            f' "{dialect.model_role}" {dialect.turn}; a preference prompt'
            f' must end with a "user" {dialect.turn} that the responses answer',
        )
        return None
    return Conversation(tuple(Turn(cast(Role, t.role), t.text, t.weight) for t in turns), system)


# --- Vertex / Gemini ----------------------------------------------------------------------


def vertex_parts_text(value: object, path: str, issues: LineIssues) -> str | None:
    """The concatenated text of a Gemini ``parts`` list."""
    parts = issues.list_of(value, path, 'a list of parts like [{"text": "..."}]')
    if parts is None:
        return None
    texts: list[str] = []
    for index, part_value in enumerate(parts):
        part_path = path_at(path, index)
        part = issues.object_of(part_value, part_path, VERTEX_PART)
        if part is None:
            continue
        non_text = sorted(NON_TEXT_PART_KEYS & part.keys())
        if non_text:
            issues.error(part_path, f"only text parts are supported; found {non_text[0]}")
        elif "text" not in part:
            keys = f" (found {join_keys(list(part))})" if part else ""
            issues.error(part_path, f'missing "text"; expected {VERTEX_PART}{keys}')
        else:
            text = issues.string_of(part["text"], path_at(part_path, "text"))
            if text is not None:
                texts.append(text)
    if len(texts) != len(parts):
        return None
    return issues.non_empty(
        "".join(texts), path_at(path_at(path, 0), "text") if len(parts) == 1 else path
    )


def vertex_turn(
    value: object, path: str, issues: LineIssues, roles: tuple[str, ...]
) -> RawTurn | None:
    content = issues.object_of(value, path, VERTEX_TURN)
    if content is None:
        return None
    role = content.get("role")
    role_path = path_at(path, "role")
    if "role" not in content:
        issues.error(role_path, f'missing "role"; expected {" or ".join(map(describe, roles))}')
    elif role not in roles:
        hint = {
            "assistant": '; "assistant" is the OpenAI name, Vertex uses "model"',
            "system": '; put system text in "systemInstruction" instead',
        }.get(role if isinstance(role, str) else "", "")
        issues.error(
            role_path,
            f"unknown role {describe(role)}; expected {' or '.join(map(describe, roles))}{hint}",
        )
    text = None
    if issues.missing(content, "parts", path, 'the turn\'s text as [{"text": "..."}]'):
        text = vertex_parts_text(content["parts"], path_at(path, "parts"), issues)
    if role not in roles or text is None:
        return None
    return RawTurn(role, text, 1, path)


def vertex_system(obj: dict, issues: LineIssues) -> str | None:
    key = "systemInstruction" if "systemInstruction" in obj else "system_instruction"
    if key not in obj:
        return None
    instruction = issues.object_of(obj[key], key, 'an object like {"parts": [{"text": "..."}]}')
    if instruction is None or not issues.missing(instruction, "parts", key, "its text parts"):
        return None
    return vertex_parts_text(instruction["parts"], path_at(key, "parts"), issues)


def vertex_contents(obj: dict, issues: LineIssues, ending: Ending) -> Conversation | None:
    system = vertex_system(obj, issues)
    if not issues.missing(obj, "contents", "", VERTEX_CONTENTS):
        return None
    contents = issues.list_of(obj["contents"], "contents", VERTEX_CONTENTS)
    if contents is None:
        return None
    turns = [
        vertex_turn(c, path_at("contents", i), issues, ("user", "model"))
        for i, c in enumerate(contents)
    ]
    if issues.has_errors:  # each missing turn has reported its error
        return None
    return build_conversation(system, cast(list[RawTurn], turns), issues, VERTEX, ending)


# --- OpenAI -------------------------------------------------------------------------------


def openai_content(message: dict, path: str, issues: LineIssues) -> str | None:
    """The text of an OpenAI message's ``content``: a string or a list of text parts."""
    content_path = path_at(path, "content")
    content = message.get("content")
    if content is None:
        tool = next((k for k in ("tool_calls", "function_call") if message.get(k)), None)
        if tool:
            issues.error(content_path, f"only text content is supported; found {tool}")
        elif "content" not in message:
            issues.error(content_path, 'missing "content"; expected the message text')
        else:
            issues.error(content_path, "expected text (a string); found null")
        return None
    if isinstance(content, str):
        return issues.non_empty(content, content_path)
    if not isinstance(content, list):
        issues.error(
            content_path, f"expected a string or a list of text parts; found {found(content)}"
        )
        return None
    texts: list[str] = []
    for index, part_value in enumerate(content):
        part_path = path_at(content_path, index)
        part = issues.object_of(
            part_value, part_path, 'a part like {"type": "text", "text": "..."}'
        )
        if part is None:
            continue
        kind = part.get("type", "text")
        if kind != "text":
            issues.error(part_path, f"only text parts are supported; found {name_of(kind)}")
        elif issues.missing(part, "text", part_path, "the part's text"):
            text = issues.string_of(part["text"], path_at(part_path, "text"))
            if text is not None:
                texts.append(text)
    if len(texts) != len(content):
        return None
    return issues.non_empty("".join(texts), content_path)


def openai_message(
    value: object, path: str, issues: LineIssues
) -> tuple[str, str | None, int] | None:
    """The canonical role ("system", "user", "model"), text and weight of one message."""
    message = issues.object_of(value, path, OPENAI_MESSAGE)
    if message is None:
        return None
    role = message.get("role")
    canonical = OPENAI_ROLES.get(role) if isinstance(role, str) else None
    if canonical is None and issues.missing(message, "role", path, EXPECTED_OPENAI_ROLES):
        hint = {
            "model": '; "model" is the Vertex name, OpenAI uses "assistant"',
            "tool": "; tool messages are not supported",
            "function": "; function messages are not supported",
        }.get(role if isinstance(role, str) else "", "")
        issues.error(
            path_at(path, "role"),
            f"unknown role {describe(role)}; expected {EXPECTED_OPENAI_ROLES}{hint}",
        )
    text = openai_content(message, path, issues)
    if canonical is None:
        return None
    return canonical, text, openai_weight(message, canonical, path, issues)


def openai_weight(message: dict, role: str, path: str, issues: LineIssues) -> int:
    weight = message.get("weight", 1)
    if "weight" in message and role != "model":
        issues.error(path_at(path, "weight"), '"weight" is only allowed on assistant messages')
    elif isinstance(weight, bool) or weight not in (0, 1):
        issues.error(path_at(path, "weight"), f"expected 0 or 1; found {found(weight)}")
    return 0 if weight == 0 else 1


def openai_messages(
    value: object, path: str, issues: LineIssues, ending: Ending
) -> Conversation | None:
    """Walk an OpenAI ``messages`` list: an optional first system message, then the turns."""
    messages = issues.list_of(value, path, OPENAI_MESSAGES)
    if messages is None:
        return None
    system: str | None = None
    turns: list[RawTurn] = []
    for index, message_value in enumerate(messages):
        message_path = path_at(path, index)
        parsed = openai_message(message_value, message_path, issues)
        if parsed is None:
            continue
        role, text, weight = parsed
        if role == "system":
            if index == 0:
                system = text
            else:
                issues.error(
                    path_at(message_path, "role"), "a system message may only be the first message"
                )
            continue
        if text is not None:
            turns.append(RawTurn(role, text, weight, message_path))
    if issues.has_errors:
        return None
    if not turns:
        issues.error(path, 'expected at least one "user" message after the system message')
        return None
    return build_conversation(system, turns, issues, OPENAI, ending)


def openai_response(value: object, path: str, issues: LineIssues) -> str | None:
    """The text of a response given as one assistant message in a list."""
    messages = issues.list_of(value, path, OPENAI_RESPONSE)
    if messages is None:
        return None
    if len(messages) != 1:
        issues.error(path, f"expected {OPENAI_RESPONSE}; found {len(messages)} messages")
        return None
    parsed = openai_message(messages[0], path_at(path, 0), issues)
    if parsed is not None and parsed[0] != "model":
        issues.error(
            path_at(path_at(path, 0), "role"), 'expected "assistant": the response to the prompt'
        )
        return None
    return parsed[1] if parsed else None
