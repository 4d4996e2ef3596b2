"""Vertex AI's shapes: the requests the ``google-genai`` SDK sends in Vertex mode and the
objects it reads back, each translated to or from tuneforge's own names.

Requests ignore unknown fields. Every name in an error message is Vertex's (``epochCount``,
not ``epochs``), so a user can find the field to fix.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from tuneforge.api.google import (
    GoogleRequest,
    GoogleResponse,
    child_name,
    job_error_status,
    timestamp,
    without_nones,
)
from tuneforge.engine.methods import TuningMethod, all_methods, get_method
from tuneforge.errors import InvalidArgument
from tuneforge.models.names import TunedRef, parse_model_name
from tuneforge.service import JobRequest, JobView
from tuneforge.store.models import Event, TuningJob

ADAPTER_SIZES = {
    "ADAPTER_SIZE_ONE": 1,
    "ADAPTER_SIZE_TWO": 2,
    "ADAPTER_SIZE_FOUR": 4,
    "ADAPTER_SIZE_EIGHT": 8,
    "ADAPTER_SIZE_SIXTEEN": 16,
    "ADAPTER_SIZE_THIRTY_TWO": 32,
}
ADAPTER_SIZE_NAMES = {size: name for name, size in ADAPTER_SIZES.items()}
AdapterSize = Literal[
    "ADAPTER_SIZE_UNSPECIFIED",
    "ADAPTER_SIZE_ONE",
    "ADAPTER_SIZE_TWO",
    "ADAPTER_SIZE_FOUR",
    "ADAPTER_SIZE_EIGHT",
    "ADAPTER_SIZE_SIXTEEN",
    "ADAPTER_SIZE_THIRTY_TWO",
]
TuningMode = Literal["TUNING_MODE_UNSPECIFIED", "TUNING_MODE_PEFT_ADAPTER", "TUNING_MODE_FULL"]
TUNING_MODES = {"full": "TUNING_MODE_FULL", "peft": "TUNING_MODE_PEFT_ADAPTER"}

# tuneforge's hyperparameter names (as the service's messages use them) → Vertex's.
HYPERPARAMETER_NAMES = {
    "epochs": "epochCount",
    "learning_rate_multiplier": "learningRateMultiplier",
    "learning_rate": "learningRate",
    "batch_size": "batchSize",
    "adapter_size": "adapterSize",
    "beta": "beta",
    "max_seq_length": "maxSequenceLength",
    "warmup_ratio": "warmupRatio",
    "weight_decay": "weightDecay",
    "early_stopping_patience": "earlyStoppingPatience",
    "packing": "packing",
    "divergence": "divergence",
    "quantization": "quantization",
}


# --- tuning jobs: the request ---------------------------------------------------------------


class HyperParameters(GoogleRequest):
    """Vertex's hyperParameters and tuneforge's additions; any other field is passed on, so that
    the service refuses a name the method does not know."""

    model_config = ConfigDict(
        extra="allow", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )

    epoch_count: int | None = Field(default=None, ge=1)
    learning_rate_multiplier: float | None = Field(default=None, gt=0)
    learning_rate: float | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, ge=1)
    adapter_size: AdapterSize | None = None
    beta: float | None = Field(default=None, gt=0)
    # tuneforge's additions (Vertex has no such fields; its own clients never send them).
    max_sequence_length: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    early_stopping_patience: int | None = None
    packing: bool | None = None
    divergence: str | None = None
    quantization: str | None = None

    def to_tuneforge(self) -> dict[str, Any]:
        values = {
            "epochs": self.epoch_count,
            "learning_rate_multiplier": self.learning_rate_multiplier,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "adapter_size": ADAPTER_SIZES.get(self.adapter_size or ""),
            "beta": self.beta,
            "max_seq_length": self.max_sequence_length,
            "warmup_ratio": self.warmup_ratio,
            "weight_decay": self.weight_decay,
            "early_stopping_patience": self.early_stopping_patience,
            "packing": self.packing,
            "divergence": self.divergence,
            "quantization": self.quantization,
            # a method's own hyperparameters, in Vertex's camelCase or as tuneforge names them
            **{to_snake(name): value for name, value in (self.model_extra or {}).items()},
        }
        return {name: value for name, value in values.items() if value is not None}


class TuningSpecIn(GoogleRequest):
    """What every method's spec has; each method adds its own fields."""

    training_dataset_uri: str | None = None
    validation_dataset_uri: str | None = None
    hyper_parameters: HyperParameters = Field(default_factory=HyperParameters)
    tuning_mode: TuningMode | None = None
    export_last_checkpoint_only: bool | None = None
    grader: dict[str, Any] | None = None  # reinforcementTuningSpec's (OpenAI's grader JSON)

    def tuneforge_hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters, and the spec's own options that tuneforge keeps among them."""
        values = self.hyper_parameters.to_tuneforge()
        if self.export_last_checkpoint_only is not None:
            values["export_last_checkpoint_only"] = self.export_last_checkpoint_only
        if self.grader is not None:
            values["grader"] = self.grader
        return values


class DistillationSpecIn(TuningSpecIn):
    prompt_dataset_uri: str | None = None
    base_teacher_model: str | None = None
    tuned_teacher_model_source: str | None = None
    student_model: str | None = None


class PreTunedModelIn(GoogleRequest):
    tuned_model_name: str
    checkpoint_id: str | None = None


def parse_spec(method: TuningMethod, key: str, raw: Any) -> TuningSpecIn:
    """A method's spec from the request body; a 400 naming the field by its path if invalid."""
    model = DistillationSpecIn if method.needs_teacher else TuningSpecIn
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        path = ".".join([key, *(str(part) for part in first["loc"])])
        raise InvalidArgument(f"{path}: {first['msg']}", path) from None


def vertex_methods() -> dict[str, TuningMethod]:
    """The key of each method's spec in a TuningJob → the method."""
    return {m.vertex_spec: m for m in all_methods() if m.vertex_spec}


class CreateTuningJobRequest(GoogleRequest):
    """A TuningJob to create. Its method is whichever registered method's spec key it holds
    (``supervisedTuningSpec``, ``preferenceOptimizationSpec``, ...); other unknown fields are
    ignored, as Vertex's own fields that tuneforge has no use for."""

    model_config = ConfigDict(
        extra="allow", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )

    base_model: str | None = None
    pre_tuned_model: PreTunedModelIn | None = None
    tuned_model_display_name: str | None = Field(default=None, max_length=200)
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    # tuneforge's addition: how many devices (GPUs, or CPU processes) the job trains on. On the
    # TuningJob, not in its spec's hyperParameters: it says where the job runs, whatever the
    # method, and does not change what it learns.
    devices: int | None = None

    def method_and_spec(self) -> tuple[TuningMethod, TuningSpecIn]:
        extra = self.model_extra or {}
        given = []
        for key, method in vertex_methods().items():
            raw = extra.get(key, extra.get(to_snake(key)))
            if raw is not None:
                given.append((method, parse_spec(method, key, raw)))
        if len(given) != 1:
            keys = list(vertex_methods())
            raise InvalidArgument(
                f"give exactly one of {', '.join(keys[:-1])} and {keys[-1]} (got {len(given)})",
                keys[0],
            )
        return given[0]

    def vertex_names(self) -> dict[str, str]:
        """tuneforge's names of this request's fields → Vertex's, for error messages."""
        method, given = self.method_and_spec()
        spec = method.vertex_spec
        training = "promptDatasetUri" if method.needs_teacher else "trainingDatasetUri"
        hyper_parameters = {}
        names = HYPERPARAMETER_NAMES | {
            name: name for name in given.hyper_parameters.model_extra or {}
        }
        for name, vertex in names.items():
            hyper_parameters[name] = f"{spec}.hyperParameters.{vertex}"
            hyper_parameters[f"hyperparameters.{name}"] = f"{spec}.hyperParameters.{vertex}"
        return {
            **hyper_parameters,
            "export_last_checkpoint_only": f"{spec}.exportLastCheckpointOnly",
            "grader": f"{spec}.grader",
            "hyperparameters.grader": f"{spec}.grader",
            "hyperparameters.export_last_checkpoint_only": f"{spec}.exportLastCheckpointOnly",
            "training_file": f"{spec}.{training}",
            "validation_file": f"{spec}.validationDatasetUri",
            "base_model": "baseModel",
            "teacher_model": f"{spec}.baseTeacherModel",
            "mode": f"{spec}.tuningMode",
            "display_name": "tunedModelDisplayName",
            "metadata": "labels",
            "pre_tuned_model": "preTunedModel.tunedModelName",
            "devices": "devices",
        }

    def to_job_request(self) -> JobRequest:
        method, spec = self.method_and_spec()
        key = method.vertex_spec
        base_model = self.base_model
        teacher = None
        training = spec.training_dataset_uri
        if isinstance(spec, DistillationSpecIn):
            base_model = base_model or spec.student_model
            teacher = spec.base_teacher_model or spec.tuned_teacher_model_source
            training = spec.prompt_dataset_uri or training
            if not teacher:
                raise InvalidArgument(
                    f"{key}.baseTeacherModel or {key}.tunedTeacherModelSource is required",
                    f"{key}.baseTeacherModel",
                )
        if not training:
            field = "promptDatasetUri" if method.needs_teacher else "trainingDatasetUri"
            raise InvalidArgument(
                f"{key}.{field} is required: an uploaded file id (file-...) or a dataset path",
                f"{key}.{field}",
            )
        pre_tuned = self._pre_tuned_model_name()
        if not base_model and not pre_tuned:
            raise InvalidArgument(
                "baseModel is required (or preTunedModel.tunedModelName to tune a tuned model "
                "further)",
                "baseModel",
            )
        return JobRequest(
            base_model=base_model or "",
            training_file=training,
            validation_file=spec.validation_dataset_uri or None,
            method=method.name,
            mode="full" if spec.tuning_mode == "TUNING_MODE_FULL" else "peft",
            hyperparameters=spec.tuneforge_hyperparameters(),
            display_name=self.tuned_model_display_name,
            description=self.description,
            metadata=self.labels,
            teacher_model=teacher,
            pre_tuned_model=pre_tuned,
            devices=1 if self.devices is None else self.devices,
        )

    def _pre_tuned_model_name(self) -> str | None:
        if self.pre_tuned_model is None:
            return None
        checkpoint = self.pre_tuned_model.checkpoint_id
        if checkpoint:
            if not isinstance(parse_model_name(checkpoint), TunedRef):
                raise InvalidArgument(
                    f"preTunedModel.checkpointId {checkpoint!r}: use the checkpointId of one of "
                    "the tuned model's checkpoints (ckpt-...)",
                    "preTunedModel.checkpointId",
                )
            return checkpoint
        return self.pre_tuned_model.tuned_model_name


# --- tuning jobs: the response --------------------------------------------------------------


class CheckpointOut(GoogleResponse):
    checkpoint_id: str
    epoch: int | None = None
    step: int | None = None
    endpoint: str


class TunedModelOut(GoogleResponse):
    model: str
    endpoint: str
    checkpoints: list[CheckpointOut]


class PreTunedModelOut(GoogleResponse):
    tuned_model_name: str
    base_model: str


class TuningJobMetadata(GoogleResponse):
    completed_epoch_count: int | None = None
    completed_step_count: int | None = None
    disk_bytes: int | None = None  # tuneforge's addition: what the job's folder takes


class TuningJobOut(GoogleResponse):
    """Vertex's TuningJob. The method's spec sits under the key its registration names
    (``supervisedTuningSpec``, ...), an extra field set by :func:`tuning_job_json`."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, extra="allow"
    )

    name: str
    tuned_model_display_name: str | None = None
    description: str | None = None
    base_model: str
    state: str
    tuning_job_state: str | None = None
    create_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    update_time: str | None = None
    error: dict[str, Any] | None = None
    tuning_data_stats: dict[str, Any] | None = None
    tuning_job_metadata: TuningJobMetadata
    labels: dict[str, str] | None = None
    pre_tuned_model: PreTunedModelOut | None = None
    tuned_model: TunedModelOut | None = None
    devices: int = 1  # tuneforge's addition: the devices the job trains on


def tuning_job_json(view: JobView, parent: str) -> TuningJobOut:
    """A job as Vertex's TuningJob; ``parent`` is ``projects/{p}/locations/{l}``."""
    job = view.job
    method = get_method(job.method)
    tuned = view.tuned_model
    pre_tuned = job.hyperparameters.get("pre_tuned_model")
    spec = {method.vertex_spec or f"{method.name}Spec": _spec_json(job, method)}
    return TuningJobOut(
        name=child_name(parent, "tuningJobs", job.id),
        tuned_model_display_name=job.display_name,
        description=job.description,
        base_model=job.base_model,
        state=job.state.value,
        tuning_job_state=f"TUNING_JOB_STATE_{job.sub_state.value}" if job.sub_state else None,
        create_time=timestamp(job.created_at),
        start_time=timestamp(job.started_at),
        end_time=timestamp(job.ended_at),
        update_time=timestamp(job.updated_at),
        error=job_error_status(job.error),
        tuning_data_stats=_data_stats_json(method, job.data_stats),
        tuning_job_metadata=TuningJobMetadata(
            completed_epoch_count=job.completed_epochs,
            completed_step_count=job.completed_steps,
            disk_bytes=job.disk_bytes,
        ),
        labels=job.user_metadata or None,
        devices=job.devices,
        pre_tuned_model=(
            PreTunedModelOut(tuned_model_name=pre_tuned, base_model=job.base_model)
            if pre_tuned
            else None
        ),
        tuned_model=(
            TunedModelOut(
                model=child_name(parent, "models", tuned.id),
                endpoint=child_name(parent, "endpoints", tuned.id),
                checkpoints=[
                    CheckpointOut(
                        checkpoint_id=c.id,
                        epoch=c.epoch,
                        step=c.step,
                        endpoint=child_name(parent, "endpoints", c.id),
                    )
                    for c in view.checkpoints
                ],
            )
            if tuned is not None
            else None
        ),
        **spec,
    )


def _spec_json(job: TuningJob, method: TuningMethod) -> dict[str, Any]:
    """The job's spec. Its hyperParameters are what was asked until the job starts, then every
    value it trains with (epochs and batch size made concrete, the default learning rate)."""
    values = job.resolved_hyperparameters or job.hyperparameters or {}
    hyper_parameters = {
        HYPERPARAMETER_NAMES.get(name, to_camel(name)): values.get(name)
        for name in method.hyperparameters.model_fields
        if values.get(name) not in (None, "auto")
    }
    if "epochCount" not in hyper_parameters and job.total_epochs:
        hyper_parameters["epochCount"] = job.total_epochs  # a job from before resolved values
    if "adapterSize" in hyper_parameters:
        hyper_parameters["adapterSize"] = ADAPTER_SIZE_NAMES.get(hyper_parameters["adapterSize"])
    # Spec-level fields (Vertex's, and reinforcement's grader); tuneforge keeps them with the
    # hyperparameters.
    export_last_only = hyper_parameters.pop("exportLastCheckpointOnly", None)
    grader = hyper_parameters.pop("grader", None)
    spec: dict[str, Any] = {
        "trainingDatasetUri": job.training_file,
        "validationDatasetUri": job.validation_file,
        "hyperParameters": without_nones(hyper_parameters),
        "exportLastCheckpointOnly": export_last_only,
        "grader": grader,
        "tuningMode": TUNING_MODES[job.mode.value] if method.task != "preference" else None,
    }
    if method.needs_teacher:
        spec["promptDatasetUri"] = spec.pop("trainingDatasetUri")
        teacher = job.teacher_model or ""
        is_tuned = isinstance(parse_model_name(teacher), TunedRef)
        spec["tunedTeacherModelSource" if is_tuned else "baseTeacherModel"] = teacher
        spec["studentModel"] = job.base_model
    return without_nones(spec)


def _data_stats_json(method: TuningMethod, stats: dict[str, Any] | None) -> dict[str, Any] | None:
    if not stats:
        return None
    key = method.vertex_stats or f"{method.name}DataStats"
    if method.needs_teacher:  # Vertex's distillationDataStats nests the training set's
        return {key: {"trainingDatasetStats": stats}}
    return {key: stats}


class ListTuningJobsResponse(GoogleResponse):
    tuning_jobs: list[TuningJobOut]
    next_page_token: str | None = None


class TuningJobEvent(GoogleResponse):
    """One of a job's events (tuneforge's addition: Vertex has no events list)."""

    id: str
    create_time: str | None
    level: str
    type: str
    message: str
    data: dict[str, Any] | None = None

    @classmethod
    def of(cls, event: Event) -> TuningJobEvent:
        return cls(
            id=str(event.id),
            create_time=timestamp(event.created_at),
            level=event.level.value,
            type=event.type.value,
            message=event.message,
            data=event.data,
        )


class ListTuningJobEventsResponse(GoogleResponse):
    events: list[TuningJobEvent]
    next_page_token: str | None = None


# --- tuned models as Model Registry models ------------------------------------------------------


class DeployedModelRef(GoogleResponse):
    endpoint: str
    deployed_model_id: str


class ModelCheckpoint(GoogleResponse):
    checkpoint_id: str
    epoch: int | None = None
    step: int | None = None


class ModelOut(GoogleResponse):
    """A tuned model as Vertex's Model (``models.get``). Each tuned model has one version, and
    one endpoint that serves it (the same id)."""

    name: str
    display_name: str
    description: str | None = None
    version_id: str = "1"
    create_time: str | None = None
    update_time: str | None = None
    labels: dict[str, str]
    deployed_models: list[DeployedModelRef]
    default_checkpoint_id: str | None = None
    checkpoints: list[ModelCheckpoint]


class ListModelsResponse(GoogleResponse):
    models: list[ModelOut]
    next_page_token: str | None = None


def model_json(view: JobView, parent: str) -> ModelOut:
    """The tuned model of a job (``view.tuned_model`` set) as Vertex's Model."""
    job, tuned = view.job, view.tuned_model
    assert tuned is not None
    return ModelOut(
        name=child_name(parent, "models", tuned.id),
        display_name=tuned.display_name or job.display_name or tuned.id,
        description=job.description,
        create_time=timestamp(tuned.created_at),
        update_time=timestamp(job.updated_at),
        # What google-genai reads as tuned_model_info (base model, job), and the label its
        # models.list(query_base=False) filters on.
        labels={
            "google-vertex-llm-tuning-base-model-id": job.base_model,
            "google-vertex-llm-tuning-job-id": job.id,
            "tune-type": job.method,
        },
        deployed_models=[
            DeployedModelRef(
                endpoint=child_name(parent, "endpoints", tuned.id), deployed_model_id=tuned.id
            )
        ],
        default_checkpoint_id=tuned.default_checkpoint_id,
        checkpoints=[
            ModelCheckpoint(checkpoint_id=c.id, epoch=c.epoch, step=c.step)
            for c in view.checkpoints
        ],
    )
