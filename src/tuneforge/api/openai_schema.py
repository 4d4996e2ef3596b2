"""OpenAI's shapes: the requests the ``openai`` SDK sends and the objects it reads back.

Each function here translates one object between OpenAI's names and tuneforge's; the routes in
:mod:`tuneforge.api.openai` call the service with what these give.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict

from tuneforge.api.errors import ApiError
from tuneforge.data.checks import LineIssues
from tuneforge.data.records import Conversation
from tuneforge.data.turns import openai_messages
from tuneforge.inference.types import GenerationParams, GenerationResult
from tuneforge.models.names import fine_tuned_model_name
from tuneforge.service import ModelInfo

DEFAULT_TEMPERATURE = 1.0  # OpenAI samples unless told otherwise; 0 is greedy


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


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


class ChatRequest(Request):
    model: str
    messages: list[Any]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None

    def conversation(self) -> Conversation:
        return prompt_of(self.messages, "messages")

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
        }
        return GenerationParams(**{k: v for k, v in given.items() if v is not None})

    def param_names(self) -> dict[str, str]:
        """The request's names for GenerationParams' and the prompt's parameters."""
        max_tokens = "max_tokens" if self.max_completion_tokens is None else "max_completion_tokens"
        return {"max_output_tokens": max_tokens, "contents": "messages"}


def prompt_of(messages: object, path: str) -> Conversation:
    """OpenAI messages as a prompt: an optional system message, then turns ending with a user
    message. "developer" is a system message, "assistant" the model's turn. A problem is a 400
    naming the message by its place under ``path``."""
    issues = LineIssues(line=0)
    prompt = openai_messages(messages, path, issues, ending="any")
    if prompt is None:
        first = next(p for p in issues.problems if p.severity == "error")
        raise ApiError(400, f"{first.field}: {first.message}", param=first.field)
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


class ChatMessage(OpenAIObject):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(OpenAIObject):
    index: int
    message: ChatMessage
    finish_reason: str
    logprobs: None = None


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
                    message=ChatMessage(content=completion.text),
                    finish_reason=completion.finish_reason,
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
