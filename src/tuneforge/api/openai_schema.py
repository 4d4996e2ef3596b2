"""OpenAI's shapes: the requests the ``openai`` SDK sends and the objects it reads back.

Each function here translates one object between OpenAI's names and tuneforge's; the routes in
:mod:`tuneforge.api.openai` call the service with what these give.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.errors import ApiError
from tuneforge.data.checks import LineIssues
from tuneforge.data.records import Conversation
from tuneforge.data.turns import openai_messages
from tuneforge.engine.methods import TuningMethod, all_methods, get_method
from tuneforge.inference.types import GenerationParams, GenerationResult
from tuneforge.models.names import fine_tuned_model_name, openai_checkpoint_name
from tuneforge.service import JobRequest, JobView, ModelInfo
from tuneforge.store.models import Checkpoint, Event, TuningJob
from tuneforge.store.states import JobState, SubState

# OpenAI's names for the shared hyperparameters it shows on every job; a method's own ones
# (DPO's beta) keep tuneforge's names, under method.<type>.hyperparameters.
SHOWN_HYPERPARAMETERS = {
    "epochs": "n_epochs",
    "batch_size": "batch_size",
    "learning_rate_multiplier": "learning_rate_multiplier",
}
THEIR_NAMES = {theirs: ours for ours, theirs in SHOWN_HYPERPARAMETERS.items()}


def openai_methods() -> dict[str, TuningMethod]:
    """OpenAI's method.type → the registered method it names."""
    return {m.openai_type: m for m in all_methods() if m.openai_type}


def openai_type(method: str) -> str:
    return get_method(method).openai_type or method


STATUS = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "running",
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLING: "cancelled",
    JobState.CANCELLED: "cancelled",
    JobState.PAUSED: "paused",
}
EVENT_LEVELS = {"info": "info", "warning": "warn", "error": "error"}
EVENT_ID_PREFIX = "ftevent-"
DEFAULT_TEMPERATURE = 1.0  # OpenAI samples unless told otherwise; 0 is greedy


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OpenAIObject(BaseModel):
    """An object OpenAI's SDKs read. Served whole, nulls included: OpenAI writes an absent
    value as ``null`` (``refusal``, ``status_details``, ...), and its SDKs type such fields as
    present-but-nullable, so these routes do not use ``response_model_exclude_none``."""


# --- fine-tuning jobs ---------------------------------------------------------------------


class HyperparametersIn(BaseModel):
    """Numbers or "auto", under OpenAI's names; any other field is passed on, so that the
    service refuses a name the method does not know (and checks every value's bounds)."""

    model_config = ConfigDict(extra="allow")

    def to_tuneforge(self) -> dict[str, Any]:
        given = self.model_extra or {}
        return {
            THEIR_NAMES.get(name, name): value
            for name, value in given.items()
            if value is not None and value != "auto"
        }


class MethodSettings(Request):
    hyperparameters: HyperparametersIn = Field(default_factory=HyperparametersIn)


class MethodIn(BaseModel):
    """``{"type": "dpo", "dpo": {"hyperparameters": {...}}}``: the settings sit under the
    key the type names."""

    model_config = ConfigDict(extra="allow")

    type: str

    def settings(self) -> MethodSettings | None:
        given = (self.model_extra or {}).get(self.type)
        return MethodSettings.model_validate(given) if given is not None else None


class JobCreate(Request):
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: HyperparametersIn | None = None  # deprecated by OpenAI for `method`
    method: MethodIn | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None

    def method_type(self) -> str:
        return self.method.type if self.method else "supervised"

    def method_settings(self) -> MethodSettings | None:
        """``method.supervised`` or ``method.dpo``, whichever the method's type names."""
        return self.method.settings() if self.method else None

    def param_names(self) -> dict[str, str]:
        """The request's names for the service's parameters (hyperparameters by where this
        request gives them), for error messages."""
        kind = self.method_type()
        path = f"method.{kind}.hyperparameters" if self.method_settings() else "hyperparameters"
        method = openai_methods().get(kind)
        names = list(method.hyperparameters.model_fields) if method else []
        named = {ours: f"{path}.{SHOWN_HYPERPARAMETERS.get(ours, ours)}" for ours in names}
        return {"base_model": "model", **named}

    def to_job_request(self) -> JobRequest:
        kind = self.method_type()
        offered = openai_methods()
        if kind not in offered:
            elsewhere = [
                f"{m.name} is available through the Vertex API ({m.vertex_spec}) and the CLI "
                f"(tuneforge tune --method {m.name})"
                for m in all_methods()
                if not m.openai_type and m.vertex_spec
            ]
            raise ApiError(
                400,
                f"method.type {kind!r} is not available through the OpenAI API, which offers "
                f"{' and '.join(repr(m) for m in offered)}; " + "; ".join(elsewhere),
                code="invalid_method",
                param="method.type",
            )
        settings = self.method_settings()
        hyperparameters: dict[str, Any] = {}  # the method's win over the deprecated ones
        for source in (self.hyperparameters, settings.hyperparameters if settings else None):
            if source is not None:
                hyperparameters |= source.to_tuneforge()
        return JobRequest(
            base_model=self.model,
            training_file=self.training_file,
            validation_file=self.validation_file,
            method=offered[kind].name,
            hyperparameters=hyperparameters,
            suffix=self.suffix,
            seed=self.seed,
            metadata=self.metadata or {},
        )


def job_status(job: TuningJob) -> str:
    if job.state == JobState.RUNNING and job.sub_state == SubState.PROCESSING_DATASET:
        return "validating_files"
    return STATUS[job.state]


def job_object(view: JobView, result_files: list[str]) -> dict[str, Any]:
    """OpenAI's FineTuningJob. Before the job starts its hyperparameters are what was asked
    ("auto" where nothing was); from its start on, the values it trains with."""
    job = view.job
    values = job.resolved_hyperparameters or job.hyperparameters or {}
    hyperparameters = {
        theirs: values.get(ours, "auto") for ours, theirs in SHOWN_HYPERPARAMETERS.items()
    }
    method_type = openai_type(job.method)
    own = {name: values.get(name, "auto") for name in get_method(job.method).own_hyperparameters()}
    method: dict[str, Any] = {
        "type": method_type,
        method_type: {"hyperparameters": {**hyperparameters, **own}},
    }
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": timestamp(job.created_at),
        "finished_at": timestamp(job.ended_at),
        "model": job.base_model,
        "fine_tuned_model": fine_tuned_model_name(job) if view.tuned_model else None,
        "organization_id": job.project_id,
        "status": job_status(job),
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "hyperparameters": hyperparameters,
        "method": method,
        "result_files": result_files,
        "trained_tokens": job.trained_tokens,
        "estimated_finish": timestamp(job.estimated_finish),
        "error": job.error,
        "seed": job.seed,
        "metadata": job.user_metadata or None,
        "integrations": [],
    }


def event_object(event: Event) -> dict[str, Any]:
    return {
        "id": f"{EVENT_ID_PREFIX}{event.id}",
        "object": "fine_tuning.job.event",
        "created_at": timestamp(event.created_at),
        "level": EVENT_LEVELS.get(event.level.value, "info"),
        "message": event.message,
        "type": event.type.value,
        "data": event_data(event),
    }


def event_data(event: Event) -> dict[str, Any]:
    """A metrics event's data in OpenAI's names (a message event's data as it is)."""
    data = event.data or {}
    metrics = data.get("metrics") or {}
    if data.get("kind") == "step":
        return {
            "step": metrics.get("step"),
            "total_steps": metrics.get("total_steps"),
            "train_loss": metrics.get("loss"),
            "train_mean_token_accuracy": metrics.get("token_accuracy"),
        }
    if data.get("kind") == "epoch":
        return {
            "step": metrics.get("step"),
            "epoch": metrics.get("epoch"),
            "train_loss": metrics.get("train_loss"),
            "valid_loss": metrics.get("valid_loss"),
            "valid_mean_token_accuracy": metrics.get("valid_token_accuracy"),
        }
    return data


def event_id(value: str) -> int:
    """The store's id of an ``ftevent-N`` id (for ``after``)."""
    number = value.removeprefix(EVENT_ID_PREFIX)
    if not number.isdigit():
        raise ApiError(400, f"after: {value!r} is not an event id", param="after")
    return int(number)


def checkpoint_object(
    job: TuningJob, checkpoint: Checkpoint, step_metrics: dict[str, Any]
) -> dict[str, Any]:
    """``step_metrics``: the training metrics logged at the checkpoint's step, if any."""
    stored = checkpoint.metrics or {}
    return {
        "id": checkpoint.id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": timestamp(checkpoint.created_at),
        "fine_tuning_job_id": job.id,
        "fine_tuned_model_checkpoint": openai_checkpoint_name(
            fine_tuned_model_name(job), checkpoint.step
        ),
        "step_number": checkpoint.step,
        "metrics": {
            "step": checkpoint.step,
            "train_loss": stored.get("train_loss", step_metrics.get("loss")),
            "train_mean_token_accuracy": step_metrics.get("token_accuracy"),
            "valid_loss": stored.get("valid_loss"),
            "valid_mean_token_accuracy": stored.get("valid_mean_token_accuracy"),
            "full_valid_loss": stored.get("valid_loss"),
            "full_valid_mean_token_accuracy": stored.get("valid_mean_token_accuracy"),
        },
    }


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
        """The messages as a prompt: an optional system message, then turns ending with a user
        message. "developer" is a system message, "assistant" the model's turn."""
        issues = LineIssues(line=0)
        prompt = openai_messages(self.messages, "messages", issues, ending="any")
        if prompt is None:
            first = next(p for p in issues.problems if p.severity == "error")
            raise ApiError(400, f"{first.field}: {first.message}", param=first.field)
        if not prompt.is_prompt_only:
            last = f"messages[{len(self.messages) - 1}]"
            raise ApiError(
                400,
                f'{last}: the last message must be a "user" message, which the model answers',
                param=last,
            )
        return prompt

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
