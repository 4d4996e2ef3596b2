"""What the dashboard's "New job" page shows before a job starts: the choices (files, models,
methods), the chosen file's validation, first lines and statistics, the method's
hyperparameters with the defaults the run would resolve, and a token count and time estimate.

Everything is read through the service and the engine's own rules (the method registry,
``resolve_hyperparameters``, ``compute_stats``): the page shows what the job will do, it does
not decide it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tuneforge.data.records import DatasetFormat
from tuneforge.data.stats import DatasetStats
from tuneforge.engine.methods import all_methods, get_method
from tuneforge.engine.methods.registry import TuningMethod
from tuneforge.engine.spec import resolve_hyperparameters
from tuneforge.errors import TuneforgeError
from tuneforge.service import ModelInfo, Service
from tuneforge.service.jobs import checked_hyperparameters
from tuneforge.store.models import File
from tuneforge.store.states import JobState
from tuneforge.ui import present

HP_PREFIX = "hp."  # form fields "hp.epochs", ... hold the method's hyperparameters
PREVIEW_LINES = 5
PREVIEW_LINE_CHARS = 600
FILES_OFFERED = 100
JOBS_FOR_ESTIMATE = 100
MODES = ("peft", "full")


@dataclass
class JobForm:
    """What the user has chosen so far (the form's fields, as text)."""

    training_file: str = ""
    validation_file: str = ""
    model: str = ""
    method: str = "supervised"
    mode: str = "peft"
    suffix: str = ""
    display_name: str = ""
    hyperparameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> JobForm:
        def text(name: str) -> str:
            value = fields.get(name)
            return value.strip() if isinstance(value, str) else ""

        return cls(
            training_file=text("training_file"),
            validation_file=text("validation_file"),
            model=text("model"),
            method=text("method") or "supervised",
            mode=text("mode") or "peft",
            suffix=text("suffix"),
            display_name=text("display_name"),
            hyperparameters={
                name.removeprefix(HP_PREFIX): value.strip()
                for name, value in fields.items()
                if name.startswith(HP_PREFIX) and isinstance(value, str) and value.strip()
            },
        )

    def hyperparameter_values(self) -> dict[str, Any]:
        """The hyperparameters the user set, read as JSON where they parse (``3``, ``0.1``,
        ``true``), as text otherwise (``auto``); the method's own type then checks them."""
        values: dict[str, Any] = {}
        for name, raw in self.hyperparameters.items():
            try:
                values[name] = json.loads(raw)
            except ValueError:
                values[name] = raw
        return values


@dataclass(frozen=True)
class HyperparameterRow:
    name: str
    description: str
    default: Any  # the method's default ("auto", a number, or None: worked out at start)
    resolved: Any  # what the run would use for the chosen file and model (None: not known yet)
    value: str  # what the user typed
    is_bool: bool


@dataclass(frozen=True)
class Estimate:
    tokens: int  # tokens trained: every example (truncated) times the epochs
    seconds: float | None
    how: str  # where the time comes from, or why there is none


@dataclass
class FilePreview:
    file: File
    summary: str
    lines: list[str]
    stats: DatasetStats | None = None
    stats_view: present.StatsView | None = None
    resolved: dict[str, Any] | None = None
    estimate: Estimate | None = None
    note: str | None = None  # why there are no statistics


def offered_files(service: Service, project_id: str) -> list[File]:
    return list(service.files.list(project_id, limit=FILES_OFFERED).items)


def method_for_file(row: File) -> str:
    """The tuning method a file's format is data for: preference formats for preference
    tuning, every other one for supervised tuning."""
    preference = row.format in {f.value for f in DatasetFormat if f.is_preference}
    return "preference" if preference else "supervised"


def offered_methods() -> list[TuningMethod]:
    return all_methods()


def chosen_model(models: list[ModelInfo], name: str) -> ModelInfo | None:
    return next((m for m in models if m.id == name), None)


def first_lines(service: Service, row: File) -> list[str]:
    """The file's first lines as stored (cut at ``PREVIEW_LINE_CHARS``), each re-indented as
    JSON when it is JSON."""
    lines: list[str] = []
    with service.files.local_path(row).open("rb") as handle:
        for raw in handle:
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            with contextlib.suppress(ValueError):
                text = json.dumps(json.loads(text), ensure_ascii=False)
            if len(text) > PREVIEW_LINE_CHARS:
                text = text[:PREVIEW_LINE_CHARS] + " …"
            lines.append(text)
            if len(lines) == PREVIEW_LINES:
                break
    return lines


def hyperparameter_rows(
    method: TuningMethod, form: JobForm, resolved: Mapping[str, Any] | None
) -> list[HyperparameterRow]:
    rows = []
    for name, info in method.hyperparameters.model_fields.items():
        rows.append(
            HyperparameterRow(
                name=name,
                description=info.description or "",
                default=info.default,
                resolved=(resolved or {}).get(name),
                value=form.hyperparameters.get(name, ""),
                is_bool=info.annotation in (bool, "bool"),
            )
        )
    return rows


def preview(
    service: Service, project_id: str, form: JobForm, model: ModelInfo | None
) -> FilePreview | None:
    """The chosen training file's validation, first lines and (when it is valid and a base
    model is chosen) its statistics, resolved hyperparameters and estimate."""
    if not form.training_file:
        return None
    row = service.files.get(project_id, form.training_file)
    result = FilePreview(
        file=row, summary=present.problems_summary(row.validation), lines=first_lines(service, row)
    )
    if row.status != "processed":
        result.note = (
            "Statistics come once the file is validated."
            if row.status == "uploaded"
            else "No statistics: the file is not valid."
        )
        return result
    if model is None:
        result.note = "Choose a base model to count tokens with its tokenizer."
        return result
    try:
        _add_statistics(service, project_id, form, model, result)
    except TuneforgeError as err:
        result.note = f"No statistics: {err}"
    return result


def _add_statistics(
    service: Service, project_id: str, form: JobForm, model: ModelInfo, result: FilePreview
) -> None:
    """Validate the file as the job will (the method's task, the base model's tokenizer and
    sequence length), then resolve the hyperparameters and count what it will train."""
    from transformers import AutoConfig

    from tuneforge.data.stats import compute_stats
    from tuneforge.data.validate import first_errors
    from tuneforge.jobs.datasets import validate_for_job
    from tuneforge.models.loading import load_tokenizer, quiet_transformers
    from tuneforge.models.resolve import resolve_base_model

    method = get_method(form.method)
    hyperparameters = checked_hyperparameters(method, form.hyperparameter_values())
    quiet_transformers()
    source = resolve_base_model(model.base_model, service.settings).source
    tokenizer = load_tokenizer(source)
    config = AutoConfig.from_pretrained(source)
    report = validate_for_job(
        service.files.local_path(result.file),
        method.task,
        "training_file",
        tokenizer=tokenizer,
        max_length=hyperparameters.max_seq_length,
    )
    if not report.ok:
        errors = first_errors(report.problems, report.error_count)
        result.note = f"Not valid for {method.name} tuning with this model: {errors}"
        return
    resolved = resolve_hyperparameters(
        hyperparameters,
        "full" if form.mode == "full" else "peft",
        report.example_count,
        hidden_size=getattr(config, "hidden_size", None),
        model_max_length=getattr(config, "max_position_embeddings", None),
        method=method.name,
    )
    stats = compute_stats(
        report.examples,
        tokenizer,
        epochs=int(resolved.epochs),
        batch_size=int(resolved.batch_size),
        max_length=resolved.max_seq_length,
        token_counts=report.token_counts,
    )
    result.stats = stats
    result.stats_view = present.stats_view(stats.to_vertex())
    result.resolved = resolved.model_dump()
    result.estimate = estimate(service, project_id, model.base_model, stats.billable_tokens)


def estimate(service: Service, project_id: str, base_model: str, tokens: int) -> Estimate:
    """The time to train ``tokens`` at the speed of this project's newest succeeded job on the
    same base model: its trained tokens over its time from start to end (loading included),
    so it is a measured rate on this machine, not a guess."""
    jobs = service.jobs.list(project_id, limit=JOBS_FOR_ESTIMATE).items
    for view in jobs:
        job = view.job
        if (
            job.state == JobState.SUCCEEDED
            and job.base_model == base_model
            and job.trained_tokens
            and job.started_at
            and job.ended_at
        ):
            seconds = (job.ended_at - job.started_at).total_seconds()
            if seconds <= 0:
                continue
            rate = job.trained_tokens / seconds
            return Estimate(
                tokens=tokens,
                seconds=tokens / rate,
                how=(
                    f"at {rate:,.0f} tokens/s, the speed of job {job.id} on this model "
                    "(its trained tokens over its time from start to end, loading included)"
                ),
            )
    return Estimate(
        tokens=tokens,
        seconds=None,
        how="no job on this model has finished in this project yet: the first one's "
        "speed (trained tokens over its time from start to end) sets the estimate",
    )
