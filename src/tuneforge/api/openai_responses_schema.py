"""OpenAI's Responses API shapes: the request ``client.responses.create`` sends, the
``response`` object, and the events of its stream (``openai/types/responses/`` in the SDK).

tuneforge answers with text only and keeps no responses: a parameter that asks for more
(tools, stored responses to continue from, structured output, reasoning) is refused naming it,
never ignored; those that change nothing here (``metadata``, ``user``, ``store: false``,
``parallel_tool_calls``, ...) are accepted.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any, Literal

from pydantic import Field

from tuneforge.api.errors import ApiError
from tuneforge.api.openai_schema import (
    DEFAULT_TEMPERATURE,
    MAX_OUTPUT_TOKENS,
    UNSUPPORTED,
    ChoiceLogprobs,
    OpenAIObject,
    StrictRequest,
    TokenLogprobOut,
    prompt_of,
    response_format_schema,
)
from tuneforge.data.checks import LineIssues, found
from tuneforge.data.records import Conversation, Turn
from tuneforge.inference.types import (
    MAX_TOP_LOGPROBS,
    Completion,
    FinishReason,
    GenerationParams,
)

INPUT_PART_TYPES = {"input_text": "text", "output_text": "text"}
LOGPROBS_INCLUDE = "message.output_text.logprobs"


class ResponsesRequest(StrictRequest):
    """``POST /v1/responses``. Unknown parameters are refused, not ignored."""

    model: str = Field(max_length=1000)
    input: Any
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    # Accepted: they change nothing about the answer.
    metadata: dict[str, str] | None = None
    user: str | None = Field(default=None, max_length=512)
    safety_identifier: str | None = Field(default=None, max_length=512)
    prompt_cache_key: str | None = Field(default=None, max_length=512)
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    service_tier: str | None = Field(default=None, max_length=64)
    parallel_tool_calls: bool | None = None
    max_tool_calls: int | None = Field(default=None, ge=0)
    truncation: Literal["auto", "disabled"] | None = None
    # Accepted only with the value that asks for nothing more.
    store: bool | None = None
    background: bool | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    include: list[Any] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    # Refused whenever given.
    previous_response_id: str | None = None
    conversation: Any = None
    prompt: Any = None
    context_management: Any = None

    def refusals(self) -> list[tuple[str, object, str]]:
        text_format = (self.text or {}).get("format")
        return [
            ("store", self.store, "responses are not stored; send store=false or leave it out"),
            ("background", self.background, "background responses are not supported"),
            ("tools", self.tools, f"tools are not supported: {UNSUPPORTED}"),
            ("tool_choice", self.tool_choice not in (None, "auto", "none"),
             f"tool_choice must be \"auto\" or \"none\": {UNSUPPORTED}"),
            ("include", [item for item in self.include or [] if item != LOGPROBS_INCLUDE],
             f'only "{LOGPROBS_INCLUDE}" can be included'),
            ("top_logprobs", self.top_logprobs is not None and not self.wants_logprobs,
             f'top_logprobs needs include ["{LOGPROBS_INCLUDE}"]'),
            ("include", self.wants_logprobs and self.stream,
             "logprobs are not supported on a streamed response"),
            ("text.format", text_format is not None and not isinstance(text_format, dict),
             'expected an object such as {"type": "text"}'),
            ("text.verbosity", (self.text or {}).get("verbosity") not in (None, "medium"),
             "verbosity is not supported"),
            ("reasoning", any(v is not None for v in (self.reasoning or {}).values()),
             "reasoning options are not supported"),
            ("previous_response_id", self.previous_response_id is not None,
             "responses are not stored, so none can be continued; send the earlier turns in"
             " input"),
            ("conversation", self.conversation is not None,
             "conversations are not stored; send the earlier turns in input"),
            ("prompt", self.prompt is not None, "stored prompt templates are not supported"),
            ("context_management", self.context_management is not None,
             "context management is not supported"),
        ]  # fmt: skip

    def conversation_prompt(self) -> Conversation:
        """``input`` (a string, or messages whose content is a string or text parts) as a
        prompt, with ``instructions`` before any system message of its own."""
        if isinstance(self.input, str):
            issues = LineIssues(line=0)
            text = issues.non_empty(self.input, "input")
            if text is None:
                raise ApiError(400, f"input: {issues.problems[0].message}", param="input")
            prompt = Conversation((Turn("user", text),))
        elif isinstance(self.input, list):
            prompt = prompt_of(
                [chat_message(item, i) for i, item in enumerate(self.input)], "input"
            )
        else:
            raise ApiError(
                400,
                f"input: expected a string or a list of messages; found {found(self.input)}",
                param="input",
            )
        system = [text for text in (self.instructions, prompt.system) if text and text.strip()]
        return dataclasses.replace(prompt, system="\n\n".join(system) or None)

    def params(self) -> GenerationParams:
        given = {
            "temperature": self.effective_temperature,
            "top_p": self.top_p,
            "max_output_tokens": self.max_output_tokens,
            "json_schema": response_format_schema((self.text or {}).get("format"), "text.format"),
            "logprobs": (self.top_logprobs or 0) if self.wants_logprobs else None,
        }
        return GenerationParams(**{k: v for k, v in given.items() if v is not None})

    @property
    def wants_logprobs(self) -> bool:
        return LOGPROBS_INCLUDE in (self.include or [])

    @property
    def effective_temperature(self) -> float:
        return DEFAULT_TEMPERATURE if self.temperature is None else self.temperature

    def param_names(self) -> dict[str, str]:
        return {"contents": "input"}


def chat_message(item: object, index: int) -> object:
    """One input item as a chat message, its ``input_text`` / ``output_text`` parts as text
    parts; anything that is not a message is refused naming it."""
    if not isinstance(item, dict):
        return item  # prompt_of names what it found
    kind = item.get("type", "message")
    if kind != "message":
        path = f"input[{index}].type"
        raise ApiError(400, f"{path}: only messages are supported; found {kind!r}", param=path)
    if item.get("role") == "tool":  # the Responses API returns results as function_call_output
        path = f"input[{index}].role"
        raise ApiError(
            400,
            f'{path}: unknown role "tool"; expected "system", "developer", "user" or "assistant"',
            param=path,
        )
    content = item.get("content")
    if isinstance(content, list):
        content = [
            {**part, "type": INPUT_PART_TYPES.get(part.get("type"), part.get("type"))}
            if isinstance(part, dict) and isinstance(part.get("type"), str)
            else part
            for part in content
        ]
    return {"role": item.get("role"), "content": content}


# --- the response -------------------------------------------------------------------------


class OutputText(OpenAIObject):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[TokenLogprobOut] = Field(default_factory=list)

    @classmethod
    def of(cls, completion: Completion) -> OutputText:
        logprobs = ChoiceLogprobs.of(completion.logprobs)
        return cls(text=completion.text, logprobs=logprobs.content if logprobs else [])


class OutputMessage(OpenAIObject):
    id: str
    type: Literal["message"] = "message"
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class InputTokensDetails(OpenAIObject):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(OpenAIObject):
    reasoning_tokens: int = 0


class ResponseUsage(OpenAIObject):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int

    @classmethod
    def of(cls, input_tokens: int, output_tokens: int) -> ResponseUsage:
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )


class IncompleteDetails(OpenAIObject):
    reason: Literal["max_output_tokens"] = "max_output_tokens"


class ResponseError(OpenAIObject):
    code: Literal["server_error"] = "server_error"
    message: str


class Response(OpenAIObject):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputMessage] = Field(default_factory=list)
    parallel_tool_calls: bool
    previous_response_id: None = None
    reasoning: None = None
    store: bool = False
    temperature: float
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str = "auto"
    tools: list[Any] = Field(default_factory=list)
    top_p: float
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: str | None
    metadata: dict[str, str]


def started_response(body: ResponsesRequest, params: GenerationParams) -> Response:
    """The response as it begins: in progress, with no output yet."""
    return Response(
        id=f"resp_{uuid.uuid4().hex}",
        created_at=int(time.time()),
        status="in_progress",
        instructions=body.instructions,
        max_output_tokens=body.max_output_tokens,
        model=body.model,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        temperature=params.temperature,
        tool_choice=body.tool_choice or "auto",
        top_p=params.top_p,
        truncation=body.truncation or "disabled",
        user=body.user,
        metadata=body.metadata or {},
        text={"format": (body.text or {}).get("format") or {"type": "text"}},
    )


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def message_status(finish_reason: FinishReason) -> Literal["completed", "incomplete"]:
    return "incomplete" if finish_reason == "length" else "completed"


def finished_response(
    started: Response,
    message: OutputMessage,
    finish_reason: FinishReason,
    input_tokens: int,
    output_tokens: int,
) -> Response:
    """The response once its message is written: completed, or incomplete when it ran out of
    ``max_output_tokens`` (or the model's context), as OpenAI reports it."""
    status = message_status(finish_reason)
    return started.model_copy(
        update={
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "incomplete_details": IncompleteDetails() if status == "incomplete" else None,
            "output": [message],
            "usage": ResponseUsage.of(input_tokens, output_tokens),
        }
    )
