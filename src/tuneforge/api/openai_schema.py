"""OpenAI's shapes: the requests the ``openai`` SDK sends and the objects it reads back.

Each function here translates one object between OpenAI's names and tuneforge's; the routes in
:mod:`tuneforge.api.openai` call the service with what these give.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.errors import ApiError
from tuneforge.data.checks import LineIssues
from tuneforge.data.records import Conversation, Function, ToolCall
from tuneforge.data.tools import openai_tools
from tuneforge.data.turns import openai_messages
from tuneforge.inference.structured import ANY_JSON_OBJECT, grammar_for, schema_text
from tuneforge.inference.types import (
    Completion,
    GenerationParams,
    GenerationResult,
    TokenChoice,
    TokenLogprob,
)
from tuneforge.models.names import fine_tuned_model_name
from tuneforge.service import ModelInfo

DEFAULT_TEMPERATURE = 1.0  # OpenAI samples unless told otherwise; 0 is greedy
MAX_METADATA_PAIRS = 16  # OpenAI's limits on a request's metadata
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_OUTPUT_TOKENS = 1 << 20
UNSUPPORTED = "tuneforge answers with text from the model alone"


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StrictRequest(Request):
    """A request whose unknown parameters are refused ("Unrecognized request argument"), and
    whose known ones that ask for what tuneforge does not do are refused naming them
    (``refusals``): never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    def refusals(self) -> list[tuple[str, object, str]]:
        """(parameter, whether this request asks for it (truthy), why it is refused)."""
        return []

    def refuse_unsupported(self) -> None:
        """A 400 naming the first parameter that asks for what tuneforge does not do."""
        for param, asked, why in self.refusals():
            if asked:
                raise ApiError(400, f"{param}: {why}", code="unsupported_parameter", param=param)
        check_metadata(getattr(self, "metadata", None))


def check_metadata(metadata: dict[str, str] | None) -> None:
    metadata = metadata or {}
    if len(metadata) > MAX_METADATA_PAIRS or any(
        len(k) > MAX_METADATA_KEY or len(v) > MAX_METADATA_VALUE for k, v in metadata.items()
    ):
        raise ApiError(
            400,
            f"metadata: at most {MAX_METADATA_PAIRS} pairs, keys of at most"
            f" {MAX_METADATA_KEY} characters and values of at most {MAX_METADATA_VALUE}",
            param="metadata",
        )


class OpenAIObject(BaseModel):
    """An object OpenAI's SDKs read. Served whole, nulls included: OpenAI writes an absent
    value as ``null`` (``refusal``, ``status_details``, ...), and its SDKs type such fields as
    present-but-nullable, so these routes do not use ``response_model_exclude_none``."""


# --- models -------------------------------------------------------------------------------


def model_name(info: ModelInfo) -> str:
    """The name OpenAI requests use for a model: ``ft:...`` for a tuned one."""
    return fine_tuned_model_name(info.job) if info.job is not None else info.id


class Model(OpenAIObject):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str

    @classmethod
    def of(cls, info: ModelInfo) -> Model:
        return cls(
            id=model_name(info),
            created=timestamp(info.created_at) or 0,
            owned_by=info.job.project_id if info.job is not None else "tuneforge",
        )


class ModelDeleted(OpenAIObject):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True


class ModelList(OpenAIObject):
    object: Literal["list"] = "list"
    data: list[Model]


# --- chat completions ---------------------------------------------------------------------


class StreamOptions(Request):
    include_usage: bool = False


class ChatRequest(StrictRequest):
    """``POST /v1/chat/completions``, with OpenAI's ranges."""

    model: str
    messages: list[Any]
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # Accepted: they change nothing about the answer.
    metadata: dict[str, str] | None = None
    user: str | None = Field(default=None, max_length=512)
    safety_identifier: str | None = Field(default=None, max_length=512)
    prompt_cache_key: str | None = Field(default=None, max_length=512)
    service_tier: str | None = Field(default=None, max_length=64)
    parallel_tool_calls: bool | None = None
    # Accepted only with the value that asks for nothing more.
    store: bool | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    modalities: list[str] | None = None
    # Refused whenever given.
    functions: list[Any] | None = None
    function_call: Any = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    reasoning_effort: str | None = None
    verbosity: str | None = None

    def refusals(self) -> list[tuple[str, object, str]]:
        return [
            ("store", self.store, "completions are not stored; send store=false or leave it out"),
            ("frequency_penalty", self.frequency_penalty, "penalties are not supported; send 0"),
            ("presence_penalty", self.presence_penalty, "penalties are not supported; send 0"),
            ("top_logprobs", self.top_logprobs is not None and not self.logprobs,
             "top_logprobs needs logprobs: true"),
            ("logprobs", self.logprobs and self.stream,
             "logprobs are not supported on a streamed completion"),
            ("logit_bias", self.logit_bias, "logit_bias is not supported"),
            ("response_format", self.response_format and self.offers_tools(),
             "an answer held to JSON could make no tool call; send response_format or tools"),
            ("modalities", self.modalities not in (None, ["text"]), "only text is supported"),
            ("functions", self.functions is not None, f"not supported: {UNSUPPORTED}"),
            ("function_call", self.function_call is not None,
             f"function_call is not supported: {UNSUPPORTED}"),
            ("audio", self.audio is not None, "audio output is not supported"),
            ("prediction", self.prediction is not None, "predicted outputs are not supported"),
            ("web_search_options", self.web_search_options is not None,
             f"web search is not supported: {UNSUPPORTED}"),
            ("reasoning_effort", self.reasoning_effort is not None,
             "reasoning options are not supported"),
            ("verbosity", self.verbosity not in (None, "medium"), "verbosity is not supported"),
        ]  # fmt: skip

    def conversation(self) -> Conversation:
        """The prompt, with the tools the model may call (none with tool_choice "none": the
        model is not shown them)."""
        tools = function_tools(self.tools, "tools")
        prompt = prompt_of(self.messages, "messages", tools)
        return prompt if self.offers_tools() else replace(prompt, tools=())

    def offers_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    def tool_params(self) -> dict[str, Any]:
        """tool_choice and parallel_tool_calls in GenerationParams' names."""
        choice = self.tool_choice
        if choice is None or choice in ("auto", "none"):
            return {}
        if not self.tools:
            raise ApiError(400, "tool_choice: needs tools to choose from", param="tool_choice")
        given = {"parallel_tool_calls": self.parallel_tool_calls}
        if choice == "required":
            return {"tool_choice": "required", **given}
        name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        if not isinstance(choice, dict) or choice.get("type") != "function" or not name:
            raise ApiError(
                400,
                'tool_choice: expected "none", "auto", "required" or'
                ' {"type": "function", "function": {"name": "..."}}',
                param="tool_choice",
            )
        declared = [t.get("function", {}).get("name") for t in self.tools if isinstance(t, dict)]
        if name not in declared:
            raise ApiError(
                400, f"tool_choice: {name!r} is not one of the tools", param="tool_choice"
            )
        return {"tool_choice": "required", "tool_names": (name,), **given}

    def params(self) -> GenerationParams:
        given = {
            "temperature": DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
            "top_p": self.top_p,
            "max_output_tokens": self.max_completion_tokens
            if self.max_completion_tokens is not None
            else self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
            "n": self.n,
            "logprobs": (self.top_logprobs or 0) if self.logprobs else None,
            "json_schema": response_format_schema(self.response_format, "response_format"),
            **self.tool_params(),
        }
        return GenerationParams(**{k: v for k, v in given.items() if v is not None})

    def param_names(self) -> dict[str, str]:
        """The request's names for GenerationParams' and the prompt's parameters."""
        max_tokens = "max_tokens" if self.max_completion_tokens is None else "max_completion_tokens"
        return {"max_output_tokens": max_tokens, "contents": "messages"}


def function_tools(tools: list[Any] | None, param: str) -> tuple[Function, ...]:
    """A request's ``tools`` (function tools), each declaration checked; a problem is a 400
    naming it."""
    if not tools:
        return ()
    issues = LineIssues(line=0)
    functions = openai_tools(tools, param, issues)
    raise_first(issues)
    return functions


def raise_first(issues: LineIssues) -> None:
    """A 400 naming the first error among ``issues``, if any."""
    first = issues.first_error
    if first is not None:
        raise ApiError(400, f"{first.field}: {first.message}", param=first.field)


def response_format_schema(response_format: dict[str, Any] | None, param: str) -> str | None:
    """The JSON schema (canonical text) an OpenAI ``response_format`` (or the Responses API's
    ``text.format``) asks the output to match; None for plain text. Checked to compile, so a
    bad schema is a 400 before any model loads."""
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return ANY_JSON_OBJECT
    if kind != "json_schema":
        raise ApiError(
            400,
            f'{param}.type: expected "text", "json_object" or "json_schema"; found {kind!r}',
            param=f"{param}.type",
        )
    # Chat completions nest the schema under "json_schema"; the Responses API does not.
    spec = response_format.get("json_schema", response_format)
    where = f"{param}.json_schema.schema" if "json_schema" in response_format else f"{param}.schema"
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise ApiError(400, f"{where}: expected a JSON schema (an object)", param=where)
    text = schema_text(schema, where)
    grammar_for(text, where)
    return text


def prompt_of(messages: object, path: str, tools: tuple[Function, ...] = ()) -> Conversation:
    """OpenAI messages as a prompt: an optional system message, then turns ending with a user
    message or the results of the model's calls. "developer" is a system message, "assistant"
    the model's turn; earlier calls are checked against ``tools``. A problem is a 400 naming
    the message by its place under ``path``."""
    issues = LineIssues(line=0)
    prompt = openai_messages(messages, path, issues, ending="any", tools=tools)
    raise_first(issues)
    assert prompt is not None  # no error was found
    if not prompt.is_prompt_only:
        last = f"{path}[{len(cast(list, messages)) - 1}]"  # a list: openai_messages read it
        raise ApiError(
            400,
            f'{last}: the last message must be a "user" message, which the model answers',
            param=last,
        )
    return prompt


def completion_header(model: str) -> dict[str, Any]:
    """What a completion and each chunk of its stream begin with."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
    }


class FunctionCallOut(OpenAIObject):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCallOut(OpenAIObject):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut

    @classmethod
    def of(cls, call: ToolCall) -> ToolCallOut:
        return cls(id=call.id, function=FunctionCallOut(name=call.name, arguments=call.arguments))


class ChatMessage(OpenAIObject):
    role: Literal["assistant"] = "assistant"
    content: str | None  # null when the model only called tools
    refusal: None = None
    tool_calls: list[ToolCallOut] | None = None

    @classmethod
    def of(cls, completion: Completion) -> ChatMessage:
        if not completion.tool_calls:
            return cls(content=completion.text)
        return cls(
            content=completion.text or None,
            tool_calls=[ToolCallOut.of(call) for call in completion.tool_calls],
        )


class TopLogprob(OpenAIObject):
    token: str
    logprob: float
    bytes: list[int] | None

    @classmethod
    def of(cls, choice: TokenChoice) -> TopLogprob:
        return cls(token=choice.text, logprob=choice.logprob, bytes=list(choice.raw))


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(OpenAIObject):
    content: list[TokenLogprobOut] | None
    refusal: None = None

    @classmethod
    def of(cls, logprobs: list[TokenLogprob] | None) -> ChoiceLogprobs | None:
        if logprobs is None:
            return None
        return cls(
            content=[
                TokenLogprobOut(
                    **TopLogprob.of(token.chosen).model_dump(),
                    top_logprobs=[TopLogprob.of(choice) for choice in token.top],
                )
                for token in logprobs
            ]
        )


class Choice(OpenAIObject):
    index: int
    message: ChatMessage
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None


class Usage(OpenAIObject):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class ChatCompletion(OpenAIObject):
    """A non-streamed completion. Its fields follow ``completion_header``'s order, as the
    chunks of a stream do."""

    id: str
    created: int
    model: str
    system_fingerprint: str | None = None
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[Choice]
    usage: Usage

    @classmethod
    def of(cls, header: dict[str, Any], result: GenerationResult) -> ChatCompletion:
        return cls(
            **header,
            choices=[
                Choice(
                    index=index,
                    message=ChatMessage.of(completion),
                    finish_reason=completion.finish_reason,
                    logprobs=ChoiceLogprobs.of(completion.logprobs),
                )
                for index, completion in enumerate(result.completions)
            ],
            usage=Usage.of(result.prompt_tokens, result.output_tokens),
        )


def chunk_object(
    header: dict[str, Any], delta: dict[str, Any], finish_reason: str | None = None
) -> dict[str, Any]:
    return {
        **header,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def usage_chunk_object(
    header: dict[str, Any], prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """The last chunk of a stream with ``stream_options.include_usage``: no choices, the usage."""
    return {
        **header,
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": Usage.of(prompt_tokens, completion_tokens).model_dump(),
    }


# --- shared -------------------------------------------------------------------------------


def timestamp(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None
