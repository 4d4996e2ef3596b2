"""Reading the turns of a conversation in the two dialects the formats use.

Vertex/Gemini writes ``contents`` of ``{"role": "user"|"model", "parts": [{"text": ...}]}``;
OpenAI writes ``messages`` of ``{"role": "system"|"user"|"assistant"|"tool", "content": ...}``.
Both follow one rule, checked in :func:`build_conversation`: turns alternate user, model, ...
starting with user, and end as the task needs; a model turn that calls functions is followed by
one tool turn answering each call (OpenAI's ``tool`` messages, Vertex's ``functionResponse``
parts), then the model speaks again. Each call is checked against the example's ``tools``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast

from tuneforge.data.checks import LineIssues, describe, found, join_keys, name_of, path_at
from tuneforge.data.media import (
    AUDIO_FORMATS,
    Media,
    MediaError,
    decode_base64,
    from_data_url,
    kind_of,
)
from tuneforge.data.records import Conversation, Function, Role, ToolCall, Turn
from tuneforge.data.tools import (
    call_id,
    check_call,
    compact,
    function_name,
    openai_call,
    vertex_call,
)

Ending = Literal["model", "user", "any"]  # how a conversation must end

# Part keys that carry neither text, media nor function calls (Gemini parts; proto JSON
# accepts both spellings).
NON_TEXT_PART_KEYS = frozenset(
    {"executableCode", "codeExecutionResult", "executable_code", "code_execution_result"}
)
MEDIA_KEYS = ("inlineData", "inline_data", "fileData", "file_data")
INLINE_DATA = '{"mimeType": "image/png", "data": "<base64>"}'
FILE_DATA = '{"mimeType": "application/pdf", "fileUri": "file-..."}'
CALL_KEYS = ("functionCall", "function_call")
RESPONSE_KEYS = ("functionResponse", "function_response")

VERTEX_PART = 'a part like {"text": "..."}'
VERTEX_TURN = 'a turn like {"role": "user", "parts": [{"text": "..."}]}'
VERTEX_CONTENTS = 'a list of turns like [{"role": "user", "parts": [{"text": "..."}]}, ...]'
OPENAI_MESSAGES = 'a list of messages like [{"role": "user", "content": "..."}, ...]'
OPENAI_MESSAGE = 'a message like {"role": "user", "content": "..."}'
OPENAI_RESPONSE = 'a list with one message: [{"role": "assistant", "content": "..."}]'

EXPECTED_OPENAI_ROLES = '"system", "user", "assistant" or "tool"'
OPENAI_ROLES: dict[str, Role | Literal["system"]] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "model",
    "tool": "tool",
}


@dataclass(frozen=True)
class RawTurn:
    role: str  # "user", "model" or "tool" once checked ("system" while reading OpenAI's)
    text: str
    weight: int
    path: str  # where the turn is, for messages about its position
    # a model turn's calls, each with the paths of its name and its arguments
    calls: tuple[tuple[ToolCall, str, str], ...] = ()
    answers: ToolCall | None = None  # a tool turn's call: its id (OpenAI) or its name (Vertex)
    media: tuple[Media, ...] = ()  # a user turn's media parts


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
    system: str | None,
    turns: list[RawTurn],
    issues: LineIssues,
    dialect: Dialect,
    ending: Ending,
    tools: tuple[Function, ...] = (),
) -> Conversation | None:
    """Check the turns alternate user/model starting with user, that every call is answered
    by a tool turn before the model speaks again, and that the conversation ends as required."""
    built: list[Turn] = []
    pending: list[ToolCall] = []  # the last model turn's calls that no tool turn answered yet
    for turn in turns:
        if turn.role == "tool" or pending:
            answered = _answer(turn, pending, issues, dialect)
            if answered is None:
                return None
            pending.remove(answered)
            built.append(Turn("tool", turn.text, call=answered))
            continue
        previous = built[-1].role if built else None
        expected = "model" if previous in ("user", "tool") else "user"
        if turn.role != expected:
            wanted = "user" if expected == "user" else dialect.model_role
            issues.error(
                path_at(turn.path, "role"),
                f'expected {a_or_an(wanted)} "{wanted}" {dialect.turn} here; {dialect.turn}s must'
                f' alternate "user", "{dialect.model_role}", "user", ... starting with "user"',
            )
            return None  # the turns after it are out of order only because of this one
        for call, name_path, arguments_path in turn.calls:
            check_call(call, tools, issues, name_path, arguments_path)
        calls = tuple(call for call, _, _ in turn.calls)
        pending = list(calls)
        role = cast(Role, turn.role)
        built.append(Turn(role, turn.text, turn.weight, tool_calls=calls, media=turn.media))
    if not turns or issues.has_errors:
        return None
    last = turns[-1]  # it may be the model's calls: the example teaches making them
    if ending == "model" and last.role != "model":
        issues.error(
            last.path,
            f'the last {dialect.turn} is a "{last.role}" {dialect.turn}; a supervised example'
            f' must end with {a_or_an(dialect.model_role)} "{dialect.model_role}"'
            f" {dialect.turn}: the response to learn",
        )
        return None
    if ending == "user" and last.role != "user":
        issues.error(
            last.path,
            f"the prompt ends with {a_or_an(dialect.model_role)}"
            f' "{dialect.model_role}" {dialect.turn}; a preference prompt'
            f' must end with a "user" {dialect.turn} that the responses answer',
        )
        return None
    return Conversation(tuple(built), system, tools)


def _answer(
    turn: RawTurn, pending: list[ToolCall], issues: LineIssues, dialect: Dialect
) -> ToolCall | None:
    """The pending call a tool turn answers; an error when it is not a tool turn or answers
    none of them."""
    if turn.role != "tool":
        issues.error(turn.path, _unanswered(pending, dialect))
        return None
    asked = turn.answers
    if asked is None:
        return None
    for call in pending:  # by id where both have one (OpenAI's always do), else by name
        by_id = bool(asked.id and call.id)
        if (by_id and call.id == asked.id) or (not by_id and call.name == asked.name != ""):
            return call
    if dialect is OPENAI:
        what, field = f"tool_call_id {describe(asked.id)}", "tool_call_id"
    else:
        what, field = f"a call of {describe(asked.name)}", "name"
    open_calls = ", ".join(describe(c.id if dialect is OPENAI else c.name) for c in pending)
    issues.error(
        path_at(turn.path, field) if dialect is OPENAI else turn.path,
        f"answers {what}, but the {dialect.model_role} {dialect.turn} before it"
        + (f" left only these unanswered: {open_calls}" if pending else " made no such call"),
    )
    return None


def _unanswered(pending: list[ToolCall], dialect: Dialect) -> str:
    names = ", ".join(describe(c.id if dialect is OPENAI and c.id else c.name) for c in pending)
    answer = "a tool message" if dialect is OPENAI else "a functionResponse part"
    return (
        f"the calls of the {dialect.model_role} {dialect.turn} before it need {answer} each"
        f" before the conversation goes on; not answered: {names}"
    )


# --- Vertex / Gemini ----------------------------------------------------------------------


@dataclass
class VertexParts:
    """What a turn's parts hold: text, media, ``functionCall``s and ``functionResponse``s, each
    call and response with its path."""

    text: str | None = None  # None when a text part was wrong or there is no text at all
    calls: list[tuple[ToolCall, str]] = field(default_factory=list)
    responses: list[tuple[ToolCall, str, str]] = field(default_factory=list)  # call, text, path
    media: list[Media] = field(default_factory=list)
    complete: bool = True  # every part was read without error


def vertex_parts(value: object, path: str, issues: LineIssues, functions: bool) -> VertexParts:
    """Read a Gemini ``parts`` list. ``functions``: a turn of ``contents``, so calls, responses
    and media may be among them."""
    read = VertexParts(complete=False)
    parts = issues.list_of(value, path, 'a list of parts like [{"text": "..."}]')
    if parts is None:
        return read
    texts: list[str] = []
    for index, part_value in enumerate(parts):
        part_path = path_at(path, index)
        part = issues.object_of(part_value, part_path, VERTEX_PART)
        if part is None:
            continue
        non_text = sorted(NON_TEXT_PART_KEYS & part.keys())
        call_key = next((k for k in CALL_KEYS if k in part), None)
        response_key = next((k for k in RESPONSE_KEYS if k in part), None)
        media_key = next((k for k in MEDIA_KEYS if k in part), None)
        if non_text or (not functions and (call_key or response_key or media_key)):
            found_key = non_text[0] if non_text else call_key or response_key or media_key
            issues.error(part_path, f"only text parts are supported here; found {found_key}")
        elif media_key:
            media = vertex_media(part[media_key], path_at(part_path, media_key), issues)
            if media is not None:
                read.media.append(media)
        elif call_key:
            call = vertex_call(part[call_key], path_at(part_path, call_key), issues)
            if call is not None:
                read.calls.append((call, path_at(part_path, call_key)))
        elif response_key:
            answer = _vertex_response(part[response_key], path_at(part_path, response_key), issues)
            if answer is not None:
                read.responses.append((*answer, part_path))
        elif "text" not in part:
            keys = f" (found {join_keys(list(part))})" if part else ""
            issues.error(part_path, f'missing "text"; expected {VERTEX_PART}{keys}')
        else:
            text = issues.string_of(part["text"], path_at(part_path, "text"))
            if text is not None:
                texts.append(text)
    read_parts = len(texts) + len(read.calls) + len(read.responses) + len(read.media)
    read.complete = read_parts == len(parts)
    if not read.complete:
        return read
    if texts or not (read.calls or read.responses or read.media):
        text_path = path_at(path_at(path, 0), "text") if len(parts) == 1 else path
        read.text = issues.non_empty("".join(texts), text_path)
    else:
        read.text = ""
    return read


def vertex_media(value: object, path: str, issues: LineIssues) -> Media | None:
    """An ``inlineData`` part (its bytes in base64) or a ``fileData`` part (a file's URI)."""
    inline = path.rsplit(".", 1)[-1] in ("inlineData", "inline_data")
    media = issues.object_of(value, path, INLINE_DATA if inline else FILE_DATA)
    if media is None:
        return None
    mime_key = "mime_type" if "mime_type" in media else "mimeType"
    source_keys = ("data",) if inline else ("fileUri", "file_uri")
    source_key = next((k for k in source_keys if k in media), source_keys[0])
    expected = (
        "the part's MIME type"
        if mime_key not in media
        else "the part's "
        + ("bytes in base64" if inline else "file: an uploaded file's id or a URI")
    )
    if not (
        issues.missing(media, mime_key, path, "the part's MIME type")
        and issues.missing(media, source_key, path, expected)
    ):
        return None
    mime_type = issues.string_of(media[mime_key], path_at(path, mime_key))
    source = issues.string_of(media[source_key], path_at(path, source_key))
    if mime_type is None or source is None:
        return None
    try:
        kind = kind_of(mime_type)
    except MediaError as err:
        issues.error(path_at(path, mime_key), str(err))
        return None
    if not inline:
        if not source.strip():
            issues.error(path_at(path, source_key), 'expected a file\'s id or URI; found ""')
            return None
        return Media(kind, mime_type.lower(), uri=source, path=path)
    try:
        data = decode_base64(source)
    except MediaError as err:
        issues.error(path_at(path, source_key), str(err))
        return None
    return Media(kind, mime_type.lower(), data=data, path=path)


def _vertex_response(value: object, path: str, issues: LineIssues) -> tuple[ToolCall, str] | None:
    """A ``functionResponse``: the call it answers (by name, and id when given) and its
    ``response`` object as JSON text."""
    answer = issues.object_of(value, path, '{"name": "...", "response": {...}}')
    if answer is None or not issues.missing(answer, "name", path, "the called function's name"):
        return None
    response = answer.get("response")
    if not isinstance(response, dict):
        issues.error(path_at(path, "response"), f"expected an object; found {found(response)}")
        return None
    name = function_name(answer["name"], path_at(path, "name"), issues)
    own_id = call_id(answer, path, issues)
    if name is None or own_id is None:
        return None
    return ToolCall(name, "{}", own_id), compact(response)


def vertex_parts_text(value: object, path: str, issues: LineIssues) -> str | None:
    """The concatenated text of a Gemini ``parts`` list that may hold only text."""
    return vertex_parts(value, path, issues, functions=False).text


def vertex_turns(
    value: object, path: str, issues: LineIssues, roles: tuple[str, ...]
) -> list[RawTurn] | None:
    """A Gemini turn as canonical turns: one, or a tool turn per ``functionResponse`` part (a
    "user" turn, or "function" as older Vertex examples write it, that answers calls)."""
    content = issues.object_of(value, path, VERTEX_TURN)
    if content is None:
        return None
    role = content.get("role")
    role_path = path_at(path, "role")
    allowed = (*roles, "function") if "user" in roles else roles
    if "role" not in content:
        issues.error(role_path, f'missing "role"; expected {" or ".join(map(describe, roles))}')
    elif role not in allowed:
        hint = {
            "assistant": '; "assistant" is the OpenAI name, Vertex uses "model"',
            "system": '; put system text in "systemInstruction" instead',
        }.get(role if isinstance(role, str) else "", "")
        issues.error(
            role_path,
            f"unknown role {describe(role)}; expected {' or '.join(map(describe, roles))}{hint}",
        )
    read = VertexParts(complete=False)
    if issues.missing(content, "parts", path, 'the turn\'s text as [{"text": "..."}]'):
        read = vertex_parts(
            content["parts"], path_at(path, "parts"), issues, functions="user" in roles
        )
    if role not in allowed or not read.complete or read.text is None:
        return None
    if read.calls and role != "model":
        issues.error(read.calls[0][1], 'a functionCall belongs in a "model" turn')
        return None
    if read.responses and role == "model":
        issues.error(read.responses[0][2], 'a functionResponse belongs in a "user" turn')
        return None
    if read.media and role != "user":
        issues.error(read.media[0].path, 'media parts belong in "user" turns')
        return None
    if read.responses and (read.text or read.media):
        issues.error(
            path_at(path, "parts"),
            "a turn that answers calls holds only functionResponse parts; put text in a turn of"
            " its own",
        )
        return None
    if read.responses:
        return [RawTurn("tool", text, 1, at, answers=call) for call, text, at in read.responses]
    if role == "function":
        issues.error(role_path, 'a "function" turn holds functionResponse parts')
        return None
    calls = tuple((call, path_at(at, "name"), path_at(at, "args")) for call, at in read.calls)
    return [RawTurn(role, read.text, 1, path, calls=calls, media=tuple(read.media))]


def vertex_turn(
    value: object, path: str, issues: LineIssues, roles: tuple[str, ...]
) -> RawTurn | None:
    """A Gemini turn of text alone (a preference example's completion)."""
    turns = vertex_turns(value, path, issues, roles)
    return turns[0] if turns else None


def vertex_system(obj: dict, issues: LineIssues) -> str | None:
    key = "systemInstruction" if "systemInstruction" in obj else "system_instruction"
    if key not in obj:
        return None
    instruction = issues.object_of(obj[key], key, 'an object like {"parts": [{"text": "..."}]}')
    if instruction is None or not issues.missing(instruction, "parts", key, "its text parts"):
        return None
    return vertex_parts_text(instruction["parts"], path_at(key, "parts"), issues)


def vertex_contents(
    obj: dict, issues: LineIssues, ending: Ending, tools: tuple[Function, ...] = ()
) -> Conversation | None:
    system = vertex_system(obj, issues)
    if not issues.missing(obj, "contents", "", VERTEX_CONTENTS):
        return None
    contents = issues.list_of(obj["contents"], "contents", VERTEX_CONTENTS)
    if contents is None:
        return None
    turns: list[RawTurn] = []
    for index, content in enumerate(contents):
        read = vertex_turns(content, path_at("contents", index), issues, ("user", "model"))
        turns += read or []
    if issues.has_errors:  # each missing turn has reported its error
        return None
    return build_conversation(system, turns, issues, VERTEX, ending, tools)


# --- OpenAI -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Content:
    text: str
    media: tuple[Media, ...] = ()


OPENAI_PART = 'a part like {"type": "text", "text": "..."}'
OPENAI_PART_TYPES = '"text", "image_url", "input_audio" or "file"'


def openai_content(
    message: dict, path: str, issues: LineIssues, calls: bool = False
) -> Content | None:
    """The text and media of an OpenAI message's ``content``: a string or a list of parts. With
    ``calls`` (an assistant message that calls tools), it may be missing, null or empty."""
    content_path = path_at(path, "content")
    content = message.get("content")
    if content is None:
        if calls:
            return Content("")
        if message.get("function_call"):
            issues.error(
                path_at(path, "function_call"),
                'function_call is the legacy form; write "tool_calls" with "tools" declared',
            )
        elif "content" not in message:
            issues.error(content_path, 'missing "content"; expected the message text')
        else:
            issues.error(content_path, "expected text (a string); found null")
        return None
    if isinstance(content, str):
        text = content if calls and not content else issues.non_empty(content, content_path)
        return None if text is None else Content(text)
    if not isinstance(content, list):
        issues.error(
            content_path, f"expected a string or a list of text parts; found {found(content)}"
        )
        return None
    texts: list[str] = []
    media: list[Media] = []
    for index, part_value in enumerate(content):
        part_path = path_at(content_path, index)
        part = issues.object_of(part_value, part_path, OPENAI_PART)
        if part is None:
            continue
        kind = part.get("type", "text")
        if kind in MEDIA_PART_TYPES:
            read = openai_media(part, kind, part_path, issues)
            if read is not None:
                media.append(read)
        elif kind != "text":
            issues.error(
                path_at(part_path, "type"),
                f"unknown part type {name_of(kind)}; expected {OPENAI_PART_TYPES}",
            )
        elif issues.missing(part, "text", part_path, "the part's text"):
            text = issues.string_of(part["text"], path_at(part_path, "text"))
            if text is not None:
                texts.append(text)
    if len(texts) + len(media) != len(content):
        return None
    if media and message.get("role") not in ("user", None):
        issues.error(media[0].path, 'media parts belong in "user" messages')
        return None
    if calls or media:
        return Content("".join(texts), tuple(media))
    text = issues.non_empty("".join(texts), content_path)
    return None if text is None else Content(text)


MEDIA_PART_TYPES = ("image_url", "input_audio", "file")


def openai_media(part: dict, kind: str, path: str, issues: LineIssues) -> Media | None:
    """An ``image_url`` (a base64 data URL, or an http(s) URL the server fetches only when its
    operator allows), ``input_audio`` (base64 and its format) or ``file`` (an uploaded file's
    id, or a data URL in ``file_data``) part."""
    value_path = path_at(path, kind)
    expected = {
        "image_url": '{"url": "data:image/png;base64,..."}',
        "input_audio": '{"data": "<base64>", "format": "wav"}',
        "file": '{"file_id": "file-..."} or {"file_data": "data:application/pdf;base64,..."}',
    }[kind]
    if not issues.missing(part, kind, path, expected):
        return None
    value = part[kind]
    if kind == "image_url" and isinstance(value, str):
        value = {"url": value}  # the older SDKs' shorthand
    fields = issues.object_of(value, value_path, expected)
    if fields is None:
        return None
    try:
        if kind == "image_url":
            return _image_url(fields, value_path, issues)
        if kind == "input_audio":
            return _input_audio(fields, value_path, issues)
        return _file_part(fields, value_path, issues)
    except _PartError as err:
        issues.error(err.path, str(err))
        return None


class _PartError(MediaError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _string(fields: dict, key: str, path: str, expected: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value:
        what = f'missing "{key}"' if key not in fields else f"expected {expected}; found"
        raise _PartError(
            path_at(path, key),
            f"{what} {found(value)}" if key in fields else f"{what}; expected {expected}",
        )
    return value


def _data_url(url: str, path: str) -> tuple[str, bytes]:
    try:
        return from_data_url(url)
    except MediaError as err:
        raise _PartError(path, str(err)) from None


def _kind(mime_type: str, path: str):
    try:
        return kind_of(mime_type)
    except MediaError as err:
        raise _PartError(path, str(err)) from None


def _image_url(fields: dict, path: str, issues: LineIssues) -> Media:
    url_path = path_at(path, "url")
    url = _string(fields, "url", path, "a data URL or an http(s) URL")
    if url.lower().startswith(("http://", "https://")):
        return Media("image", "", uri=url, path=url_path)
    mime_type, data = _data_url(url, url_path)
    if _kind(mime_type, url_path) != "image":
        raise _PartError(url_path, f"an image_url part takes an image; found {mime_type}")
    return Media("image", mime_type, data=data, path=url_path)


def _input_audio(fields: dict, path: str, issues: LineIssues) -> Media:
    data_text = _string(fields, "data", path, "the audio's bytes in base64")
    audio_format = _string(fields, "format", path, '"wav", "mp3" or "flac"').lower()
    if audio_format not in AUDIO_FORMATS:
        raise _PartError(
            path_at(path, "format"),
            f'unsupported audio format {name_of(audio_format)}; expected "wav", "mp3" or "flac"',
        )
    try:
        data = decode_base64(data_text)
    except MediaError as err:
        raise _PartError(path_at(path, "data"), str(err)) from None
    return Media("audio", AUDIO_FORMATS[audio_format], data=data, path=path_at(path, "data"))


def _file_part(fields: dict, path: str, issues: LineIssues) -> Media:
    if "file_id" in fields:
        file_id = _string(fields, "file_id", path, "an uploaded file's id")
        return Media("document", "application/pdf", uri=file_id, path=path_at(path, "file_id"))
    data_path = path_at(path, "file_data")
    mime_type, data = _data_url(_string(fields, "file_data", path, "a base64 data URL"), data_path)
    return Media(_kind(mime_type, data_path), mime_type, data=data, path=data_path)


def openai_message(value: object, path: str, issues: LineIssues) -> RawTurn | None:
    """One message as a raw turn of canonical role ("system", "user", "model" or "tool"):
    its text, its weight, an assistant's calls and the call a tool message answers."""
    message = issues.object_of(value, path, OPENAI_MESSAGE)
    if message is None:
        return None
    role = message.get("role")
    canonical = OPENAI_ROLES.get(role) if isinstance(role, str) else None
    if canonical is None and issues.missing(message, "role", path, EXPECTED_OPENAI_ROLES):
        hint = {
            "model": '; "model" is the Vertex name, OpenAI uses "assistant"',
            "function": '; function messages are the legacy form: write "tool" messages',
        }.get(role if isinstance(role, str) else "", "")
        issues.error(
            path_at(path, "role"),
            f"unknown role {describe(role)}; expected {EXPECTED_OPENAI_ROLES}{hint}",
        )
    calls = _openai_calls(message, path, issues) if canonical == "model" else ()
    content = openai_content(message, path, issues, calls=bool(calls))
    answers = _tool_call_id(message, path, issues) if canonical == "tool" else None
    if canonical is None or content is None or calls is None:
        return None
    if canonical != "tool" and "tool_call_id" in message:
        issues.error(path_at(path, "tool_call_id"), '"tool_call_id" belongs on "tool" messages')
    weight = openai_weight(message, canonical, path, issues)
    return RawTurn(
        canonical, content.text, weight, path, calls=calls, answers=answers, media=content.media
    )


def _openai_calls(
    message: dict, path: str, issues: LineIssues
) -> tuple[tuple[ToolCall, str, str], ...] | None:
    """An assistant message's ``tool_calls``, each with the paths of its name and arguments;
    None when one of them is wrong."""
    if message.get("tool_calls") is None:
        return ()
    calls_path = path_at(path, "tool_calls")
    listed = issues.list_of(message["tool_calls"], calls_path, "a list of tool calls")
    calls = []
    for index, value in enumerate(listed or ()):
        call_path = path_at(calls_path, index)
        call = openai_call(value, call_path, issues)
        if call is not None:
            function = path_at(call_path, "function")
            calls.append((call, path_at(function, "name"), path_at(function, "arguments")))
    ids = [call.id for call, _, _ in calls if call.id]
    for repeated in sorted({i for i in ids if ids.count(i) > 1}):
        issues.error(calls_path, f"two calls have the id {describe(repeated)}")
    return tuple(calls) if listed and len(calls) == len(listed) else None


def _tool_call_id(message: dict, path: str, issues: LineIssues) -> ToolCall | None:
    if not issues.missing(message, "tool_call_id", path, "the id of the call it answers"):
        return None
    call_id = message["tool_call_id"]
    if not isinstance(call_id, str) or not call_id:
        issues.error(path_at(path, "tool_call_id"), f"expected a call's id; found {found(call_id)}")
        return None
    return ToolCall("", "{}", call_id)


def openai_weight(message: dict, role: str, path: str, issues: LineIssues) -> int:
    weight = message.get("weight", 1)
    if "weight" in message and role != "model":
        issues.error(path_at(path, "weight"), '"weight" is only allowed on assistant messages')
    elif isinstance(weight, bool) or weight not in (0, 1):
        issues.error(path_at(path, "weight"), f"expected 0 or 1; found {found(weight)}")
    return 0 if weight == 0 else 1


def openai_messages(
    value: object, path: str, issues: LineIssues, ending: Ending, tools: tuple[Function, ...] = ()
) -> Conversation | None:
    """Walk an OpenAI ``messages`` list: an optional first system message, then the turns."""
    messages = issues.list_of(value, path, OPENAI_MESSAGES)
    if messages is None:
        return None
    system: str | None = None
    turns: list[RawTurn] = []
    for index, message_value in enumerate(messages):
        message_path = path_at(path, index)
        turn = openai_message(message_value, message_path, issues)
        if turn is None:
            continue
        if turn.role == "system":
            if index == 0:
                system = turn.text
            else:
                issues.error(
                    path_at(message_path, "role"), "a system message may only be the first message"
                )
            continue
        turns.append(turn)
    if issues.has_errors:
        return None
    if not turns:
        issues.error(path, 'expected at least one "user" message after the system message')
        return None
    return build_conversation(system, turns, issues, OPENAI, ending, tools)


def openai_response(value: object, path: str, issues: LineIssues) -> str | None:
    """The text of a response given as one assistant message in a list."""
    messages = issues.list_of(value, path, OPENAI_RESPONSE)
    if messages is None:
        return None
    if len(messages) != 1:
        issues.error(path, f"expected {OPENAI_RESPONSE}; found {len(messages)} messages")
        return None
    parsed = openai_message(messages[0], path_at(path, 0), issues)
    if parsed is not None and (parsed.role != "model" or parsed.calls):
        issues.error(
            path_at(path_at(path, 0), "role"),
            'expected "assistant" with text: the response to the prompt',
        )
        return None
    return parsed.text if parsed else None
