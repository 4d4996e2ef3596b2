"""The Gemini API's ``tunedModels`` shapes (google.ai.generativelanguage v1beta), as the legacy
``google-generativeai`` SDK, ``google-genai`` and the docs' curl samples send and read them.

A Gemini tuned model is a tuning job from the moment it is created (CREATING, then ACTIVE or
FAILED), so it is shown from the job. Its id is the job's suffix when the request chose one
(``tunedModelId``), else the job's id. What goes back stays inside the v1beta protos: the
legacy SDK parses an Operation strictly (an unknown field anywhere fails), and its
dataclasses fail on ``trainingData`` or ``learningRateMultiplier`` in a TunedModel.
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import Field, ValidationError
from pydantic.alias_generators import to_camel

from tuneforge.api.errors import unknown_google_field
from tuneforge.api.google import GoogleRequest, job_error_status, timestamp, without_nones
from tuneforge.errors import InvalidArgument
from tuneforge.jobs.datasets import validate_for_job
from tuneforge.models.names import base_display_name
from tuneforge.service import JobRequest, JobView
from tuneforge.store.states import JobState

# google.ai.generativelanguage.v1beta type URLs: the legacy SDK refuses any other.
METADATA_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"
TUNED_MODEL_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.TunedModel"
STATE_NUMBERS = {"STATE_UNSPECIFIED": 0, "CREATING": 1, "ACTIVE": 2, "FAILED": 3}
GEMINI_STATES = {JobState.SUCCEEDED: "ACTIVE", JobState.FAILED: "FAILED",
                 JobState.CANCELLED: "FAILED"}  # fmt: skip  # every other state: CREATING
CANCELLED_CODE = 1  # google.rpc.Code.CANCELLED
# The Gemini API's rule for a tunedModelId; tuneforge's own id prefixes are not free to take.
TUNED_MODEL_ID = re.compile(r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?")
RESERVED_PREFIXES = ("tj-", "tm-", "ckpt-")
EXAMPLES = "tuningTask.trainingData.examples.examples"
HYPERPARAMETERS = "tuningTask.hyperparameters"
# tuneforge's names (as the service's messages use them) → this API's.
PARAM_NAMES = {
    "epochs": f"{HYPERPARAMETERS}.epochCount",
    "batch_size": f"{HYPERPARAMETERS}.batchSize",
    "learning_rate": f"{HYPERPARAMETERS}.learningRate",
    "learning_rate_multiplier": f"{HYPERPARAMETERS}.learningRateMultiplier",
    "base_model": "baseModel",
    "pre_tuned_model": "tunedModelSource.tunedModel",
    "display_name": "displayName",
    "description": "description",
    "training_file": EXAMPLES,
    "suffix": "tunedModelId",
}
GENAI_TUNE_DROPS_EXAMPLES = (
    "google-genai's tunings.tune in Gemini API mode drops the training examples it is given "
    "(an SDK bug since 1.x), so its request carries none. Tune with google-genai in Vertex mode "
    "(genai.Client(vertexai=True, ...) against this server's /v1/projects/P/locations/L/"
    "tuningJobs), with the legacy google-generativeai SDK (genai.create_tuned_model), or with "
    f"REST (POST /v1beta/tunedModels with {EXAMPLES})"
)


# --- parsing a body -----------------------------------------------------------------------


def without_trailing_commas(text: str) -> str:
    """``text`` without the commas that JSON forbids before a closing ``}`` or ``]`` (the
    Gemini docs' curl samples have them); commas inside strings are kept."""
    kept, in_string, escaped = [], False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "," and text[index + 1 :].lstrip()[:1] in ("}", "]"):
            continue
        kept.append(char)
    return "".join(kept)


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON, trailing commas allowed; a 400 naming where it is broken."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("the request body is not UTF-8 text") from None
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return json.loads(without_trailing_commas(text))
    except json.JSONDecodeError as err:
        raise InvalidArgument(
            f"the request body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


Request = TypeVar("Request", bound=GoogleRequest)


def validated(model: type[Request], body: Any) -> Request:
    """``body`` as ``model``, or a 400 naming the first bad field by its camelCase path."""
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        path = ""
        for part in first["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
        if first["type"] == "extra_forbidden":  # as Google words it
            raise InvalidArgument(unknown_google_field(path), path) from None
        raise InvalidArgument(f"{path}: {first['msg']}" if path else first["msg"], path) from None


# --- creating a tuned model -----------------------------------------------------------------


class HyperparametersIn(GoogleRequest):
    epoch_count: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    learning_rate_multiplier: float | None = Field(default=None, gt=0)

    def to_tuneforge(self) -> dict[str, Any]:
        if self.learning_rate is not None and self.learning_rate_multiplier is not None:
            raise InvalidArgument(
                f"{HYPERPARAMETERS}: give learningRate or learningRateMultiplier, not both",
                f"{HYPERPARAMETERS}.learningRate",
            )
        values = {
            "epochs": self.epoch_count,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }
        return without_nones(values)


class ExamplesIn(GoogleRequest):
    # Checked by the data layer, as an uploaded file's lines are, to name each problem.
    examples: list[Any] | None = None


class TrainingDataIn(GoogleRequest):
    examples: ExamplesIn | None = None


class TuningTaskIn(GoogleRequest):
    training_data: TrainingDataIn | None = None
    hyperparameters: HyperparametersIn = Field(default_factory=HyperparametersIn)


class TunedModelSourceIn(GoogleRequest):
    tuned_model: str
    base_model: str | None = None  # the source's base, which tuneforge knows already


class CreateTunedModelRequest(GoogleRequest):
    """A TunedModel to create. ``temperature``, ``topP`` and ``topK`` (the tuned model's
    sampling defaults) are accepted and not kept: a request's generationConfig decides."""

    base_model: str | None = None
    tuned_model_source: TunedModelSourceIn | None = None
    display_name: str | None = None
    description: str | None = None
    tuning_task: TuningTaskIn = Field(default_factory=TuningTaskIn)

    def examples(self, from_genai_sdk: bool) -> list[Any]:
        data = self.tuning_task.training_data
        examples = data.examples.examples if data and data.examples else None
        if not examples:
            message = f"{EXAMPLES} is required: the training examples, as {{textInput, output}}"
            if from_genai_sdk:
                message += f"; {GENAI_TUNE_DROPS_EXAMPLES}"
            raise InvalidArgument(message, EXAMPLES)
        return examples

    def base_model_name(self) -> str:
        """The base model as tuneforge names it (``models/`` taken off)."""
        if not self.base_model:
            raise InvalidArgument(
                "baseModel is required: models/NAME (such as models/tuneforge/tiny-chat), or "
                "tunedModelSource.tunedModel to go on tuning a tuned model",
                "baseModel",
            )
        return self.base_model.removeprefix("models/")

    def job_request(self, training_file: str, tuned_model_id: str | None, pre_tuned: str | None):
        return JobRequest(
            base_model="" if pre_tuned else self.base_model_name(),
            pre_tuned_model=pre_tuned,
            training_file=training_file,
            hyperparameters=self.tuning_task.hyperparameters.to_tuneforge(),
            display_name=self.display_name,
            description=self.description,
            suffix=tuned_model_id,
        )


def is_tuned_model_id(text: str) -> bool:
    """Whether ``text`` may be chosen as a tunedModelId."""
    return bool(TUNED_MODEL_ID.fullmatch(text)) and not text.startswith(RESERVED_PREFIXES)


def check_tuned_model_id(tuned_model_id: str) -> None:
    if not is_tuned_model_id(tuned_model_id):
        raise InvalidArgument(
            f"tunedModelId {tuned_model_id!r}: use up to 40 lowercase letters, digits and "
            "dashes, starting with a letter and not ending with a dash, and not starting with "
            f"{', '.join(RESERVED_PREFIXES)} (tuneforge's own ids)",
            "tunedModelId",
        )


def examples_jsonl(examples: list[Any]) -> bytes:
    """The inline examples as a prompt/completion JSONL dataset, one example a line, so they
    are validated and trained on as an uploaded file is; a 400 naming each of the first bad
    examples by index and field (``tuningTask.trainingData.examples.examples[3].textInput``)."""
    lines, indexes, problems = [], [], []
    for index, example in enumerate(examples):
        path = f"{EXAMPLES}[{index}]"
        if not isinstance(example, dict):
            problems.append((index, f"{path}: expected an object {{textInput, output}}"))
            continue
        line = {
            ("text_input" if key == "textInput" else key): value for key, value in example.items()
        }
        missing = [key for key in ("text_input", "output") if key not in line]
        problems += [(index, f"{path}.{to_camel(key)}: missing") for key in missing]
        if not missing:
            lines.append(json.dumps(line, ensure_ascii=False))
            indexes.append(index)
    dataset = ("\n".join(lines) + "\n").encode()
    report = validate_for_job(dataset, "supervised", "training_file")
    if report.ok and not problems:
        return dataset
    for problem in report.problems:
        if problem.severity == "error" and (problem.line or not problems):
            index = indexes[problem.line - 1] if problem.line else -1
            problems.append((index, _example_problem(index, problem.field, problem.message)))
    problems.sort(key=lambda problem: problem[0])
    count = len(problems)
    raise InvalidArgument(
        f"{EXAMPLES}: {count} problem{'s' * (count != 1)}: "
        + first_errors_text([text for _, text in problems], count),
        EXAMPLES,
    )


def _example_problem(index: int, field: str, message: str) -> str:
    if index < 0:  # the dataset as a whole
        return message.replace("the file has", "there are").replace("lines", "examples")
    path = f"{EXAMPLES}[{index}]"
    if field:
        path += "." + ("textInput" if field == "text_input" else field)
    return f"{path}: {message}"


def first_errors_text(problems: list[str], count: int, limit: int = 5) -> str:
    more = count - min(limit, len(problems))
    return "; ".join(problems[:limit]) + (f" (and {more} more)" if more > 0 else "")


# --- a tuned model and its operation ---------------------------------------------------------


def gemini_id(view: JobView, suffix_owner: str | None) -> str:
    """The id in ``tunedModels/{id}``: the job's suffix when it names this job, else the job's
    id (``suffix_owner``: the job the suffix names, see JobService.find)."""
    suffix = view.job.suffix
    if suffix and suffix_owner == view.job.id and is_tuned_model_id(suffix):
        return suffix
    return view.job.id


def gemini_state(view: JobView) -> str:
    return GEMINI_STATES.get(view.job.state, "CREATING")


def snapshots_json(view: JobView, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TuningSnapshots from the job's per-step metrics: step, epoch (the one the step is in),
    meanLoss and computeTime."""
    started = view.job.started_at
    snapshots = []
    for metrics in steps:
        elapsed = metrics.get("elapsed_s")
        computed = started + timedelta(seconds=elapsed) if started and elapsed else None
        snapshots.append(
            without_nones(
                {
                    "step": metrics["step"],
                    "epoch": max(1, math.ceil(metrics.get("epoch") or 0)),
                    "meanLoss": metrics.get("loss"),
                    "computeTime": timestamp(computed),
                }
            )
        )
    return snapshots


def hyperparameters_json(view: JobView) -> dict[str, Any]:
    """What the job trains with once it has started (every value concrete), what was asked
    before. Never learningRateMultiplier: the legacy SDK's dataclass fails on it."""
    values = view.job.resolved_hyperparameters or view.job.hyperparameters or {}
    shown = {
        "epochCount": values.get("epochs") or view.job.total_epochs,
        "batchSize": values.get("batch_size"),
        "learningRate": values.get("learning_rate"),
    }
    return {key: value for key, value in shown.items() if value not in (None, "auto")}


def tuned_model_json(
    view: JobView, name: str, steps: list[dict[str, Any]] | None, int_enums: bool = False
) -> dict[str, Any]:
    """The job as a v1beta TunedModel named ``name``; ``steps`` (per-step metrics) gives its
    snapshots when known."""
    job = view.job
    state = gemini_state(view)
    pre_tuned = (job.hyperparameters or {}).get("pre_tuned_model")
    base = f"models/{base_display_name(job.base_model)}"
    task = {
        "startTime": timestamp(job.started_at or job.created_at),
        "completeTime": timestamp(job.ended_at) if job.state == JobState.SUCCEEDED else None,
        "hyperparameters": hyperparameters_json(view),
        "snapshots": snapshots_json(view, steps) if steps else None,
    }
    body = {
        "name": name,
        # A proto oneof: one of baseModel and tunedModelSource, never both.
        "baseModel": None if pre_tuned else base,
        "tunedModelSource": (
            {"tunedModel": f"tunedModels/{pre_tuned}", "baseModel": base} if pre_tuned else None
        ),
        "displayName": job.display_name or "",
        "description": job.description,
        "state": STATE_NUMBERS[state] if int_enums else state,
        "createTime": timestamp(job.created_at),
        "updateTime": timestamp(job.updated_at),
        "tuningTask": without_nones(task),
    }
    return without_nones(body)


def operation_json(view: JobView, name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The create's long-running Operation, ``{name}/operations/{job id}``: progress in its
    CreateTunedModelMetadata; once the job has ended, ``done`` with the TunedModel as the
    response, or the error (a google.rpc.Code) of a failed or cancelled job."""
    job = view.job
    completed = job.completed_steps or 0
    total = job.total_steps or (completed if job.state == JobState.SUCCEEDED else 0)
    completed = min(completed, total) if total else completed
    metadata = {
        "@type": METADATA_TYPE,
        "tunedModel": name,
        "totalSteps": total or None,
        "completedSteps": completed or None,
        "completedPercent": round(100.0 * completed / total, 2) if total else None,
        "snapshots": snapshots_json(view, steps) or None,
    }
    operation: dict[str, Any] = {
        "name": f"{name}/operations/{job.id}",
        "metadata": without_nones(metadata),
    }
    if job.state == JobState.SUCCEEDED:
        response = tuned_model_json(view, name, steps)
        operation |= {"done": True, "response": {"@type": TUNED_MODEL_TYPE, **response}}
    elif job.state == JobState.CANCELLED:
        operation |= {"done": True, "error": {"code": CANCELLED_CODE, "message": "cancelled"}}
    elif job.state == JobState.FAILED:
        operation |= {"done": True, "error": failure_status(job.error)}
    return operation


def failure_status(error: dict[str, Any] | None) -> dict[str, Any]:
    """A failed job's error as google.rpc.Status: a gRPC code and the message, no details (the
    legacy SDK parses an Operation strictly and knows no detail types)."""
    status = job_error_status(error) or {"code": 13, "message": "the tuning job failed"}
    return {"code": status["code"], "message": status["message"]}
