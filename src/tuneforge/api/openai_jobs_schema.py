"""OpenAI's fine-tuning shapes: the job the ``openai`` SDK creates, and the jobs, events and
checkpoints it reads back, translated between OpenAI's names and tuneforge's.

Which methods OpenAI offers, and under which ``method.type``, comes from the registry of
tuning methods (``engine/methods/``).
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.errors import ApiError
from tuneforge.api.openai_schema import OpenAIObject, Request, timestamp
from tuneforge.engine.methods import TuningMethod, all_methods, get_method
from tuneforge.models.names import fine_tuned_model_name, openai_checkpoint_name
from tuneforge.service import JobRequest, JobView
from tuneforge.store.models import Checkpoint, Event, TuningJob
from tuneforge.store.states import JobState, SubState

Item = TypeVar("Item", bound=BaseModel)

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
    grader: dict[str, Any] | None = None  # reinforcement's; kept with the hyperparameters


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
    # tuneforge's addition: how many devices (GPUs, or CPU processes) the job trains on. Beside
    # the hyperparameters, not among them: it says where the job runs, not what it learns.
    devices: int | None = None

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
        if "grader" in named:  # reinforcement's grader sits beside its hyperparameters
            named["grader"] = f"method.{kind}.grader"
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
                f"{listing([repr(m) for m in offered])}; " + "; ".join(elsewhere),
                code="invalid_method",
                param="method.type",
            )
        settings = self.method_settings()
        hyperparameters: dict[str, Any] = {}  # the method's win over the deprecated ones
        for source in (self.hyperparameters, settings.hyperparameters if settings else None):
            if source is not None:
                hyperparameters |= source.to_tuneforge()
        if settings is not None and settings.grader is not None:
            hyperparameters["grader"] = settings.grader
        return JobRequest(
            base_model=self.model,
            training_file=self.training_file,
            validation_file=self.validation_file,
            method=offered[kind].name,
            hyperparameters=hyperparameters,
            suffix=self.suffix,
            seed=self.seed,
            metadata=self.metadata or {},
            devices=1 if self.devices is None else self.devices,
        )


def listing(items: list[str]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def job_status(job: TuningJob) -> str:
    if job.state == JobState.RUNNING and job.sub_state == SubState.PROCESSING_DATASET:
        return "validating_files"
    return STATUS[job.state]


class FineTuningJob(OpenAIObject):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int | None
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: str
    training_file: str
    validation_file: str | None
    # n_epochs, batch_size, learning_rate_multiplier: numbers, or "auto" before the job starts
    hyperparameters: dict[str, int | float | str]
    method: dict[str, Any]  # {"type": t, t: {"hyperparameters": {...}}}
    result_files: list[str]
    trained_tokens: int | None
    estimated_finish: int | None
    disk_bytes: int | None = None  # tuneforge's addition: what the job's folder takes on disk
    devices: int = 1  # tuneforge's addition: the devices it trains on (one rank each)
    error: dict[str, Any] | None
    seed: int | None
    metadata: dict[str, str] | None
    integrations: list[Any] = Field(default_factory=list)


class FineTuningJobEvent(OpenAIObject):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int | None
    level: str
    message: str
    type: str
    data: dict[str, Any]


class CheckpointMetrics(OpenAIObject):
    step: int
    train_loss: float | None
    train_mean_token_accuracy: float | None
    valid_loss: float | None
    valid_mean_token_accuracy: float | None
    full_valid_loss: float | None
    full_valid_mean_token_accuracy: float | None


class FineTuningJobCheckpoint(OpenAIObject):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int | None
    fine_tuning_job_id: str
    fine_tuned_model_checkpoint: str
    step_number: int
    metrics: CheckpointMetrics


class Page(OpenAIObject, Generic[Item]):
    """OpenAI's cursor page: ``{"object": "list", "data": [...], "has_more": ...}``."""

    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool


def job_object(view: JobView, result_files: list[str]) -> FineTuningJob:
    """OpenAI's FineTuningJob. Before the job starts its hyperparameters are what was asked
    ("auto" where nothing was); from its start on, the values it trains with."""
    job = view.job
    values = job.resolved_hyperparameters or job.hyperparameters or {}
    hyperparameters = {
        theirs: values.get(ours, "auto") for ours, theirs in SHOWN_HYPERPARAMETERS.items()
    }
    method_type = openai_type(job.method)
    own = {name: values.get(name, "auto") for name in get_method(job.method).own_hyperparameters()}
    settings: dict[str, Any] = {}
    if "grader" in own:  # reinforcement's grader sits beside its hyperparameters
        settings["grader"] = own.pop("grader")
    method: dict[str, Any] = {
        "type": method_type,
        method_type: {**settings, "hyperparameters": {**hyperparameters, **own}},
    }
    return FineTuningJob(
        id=job.id,
        created_at=timestamp(job.created_at),
        finished_at=timestamp(job.ended_at),
        model=job.base_model,
        fine_tuned_model=fine_tuned_model_name(job) if view.tuned_model else None,
        organization_id=job.project_id,
        status=job_status(job),
        training_file=job.training_file,
        validation_file=job.validation_file,
        hyperparameters=hyperparameters,
        method=method,
        result_files=result_files,
        trained_tokens=job.trained_tokens,
        estimated_finish=timestamp(job.estimated_finish),
        disk_bytes=job.disk_bytes,
        devices=job.devices,
        error=job.error,
        seed=job.seed,
        metadata=job.user_metadata or None,
    )


def event_object(event: Event) -> FineTuningJobEvent:
    return FineTuningJobEvent(
        id=f"{EVENT_ID_PREFIX}{event.id}",
        created_at=timestamp(event.created_at),
        level=EVENT_LEVELS.get(event.level.value, "info"),
        message=event.message,
        type=event.type.value,
        data=event_data(event),
    )


def event_data(event: Event) -> dict[str, Any]:
    """A metrics event's data in OpenAI's names (a message event's data as it is), then the
    method's own metrics under their names (DPO's rewards; reinforcement's reward, kl and
    completions/mean_length per step, eval_reward per epoch)."""
    data = event.data or {}
    metrics = data.get("metrics") or {}
    own = metrics.get("extra") or {}
    if data.get("kind") == "step":
        return {
            "step": metrics.get("step"),
            "total_steps": metrics.get("total_steps"),
            "train_loss": metrics.get("loss"),
            "train_mean_token_accuracy": metrics.get("token_accuracy"),
            **own,
        }
    if data.get("kind") == "epoch":
        return {
            "step": metrics.get("step"),
            "epoch": metrics.get("epoch"),
            "train_loss": metrics.get("train_loss"),
            "valid_loss": metrics.get("valid_loss"),
            "valid_mean_token_accuracy": metrics.get("valid_token_accuracy"),
            **own,
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
) -> FineTuningJobCheckpoint:
    """``step_metrics``: the training metrics logged at the checkpoint's step, if any."""
    stored = checkpoint.metrics or {}
    return FineTuningJobCheckpoint(
        id=checkpoint.id,
        created_at=timestamp(checkpoint.created_at),
        fine_tuning_job_id=job.id,
        fine_tuned_model_checkpoint=openai_checkpoint_name(
            fine_tuned_model_name(job), checkpoint.step
        ),
        step_number=checkpoint.step,
        metrics=CheckpointMetrics(
            step=checkpoint.step,
            train_loss=stored.get("train_loss", step_metrics.get("loss")),
            train_mean_token_accuracy=step_metrics.get("token_accuracy"),
            valid_loss=stored.get("valid_loss"),
            valid_mean_token_accuracy=stored.get("valid_mean_token_accuracy"),
            full_valid_loss=stored.get("valid_loss"),
            full_valid_mean_token_accuracy=stored.get("valid_mean_token_accuracy"),
        ),
    )
