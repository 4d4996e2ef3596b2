"""What the dashboard's pages show, worked out from the store's rows: names to copy into either
SDK, the actions a job's state allows, progress, dataset statistics, and number formats."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tuneforge.errors import InvalidArgument
from tuneforge.models.names import fine_tuned_model_name, openai_checkpoint_name
from tuneforge.sizes import byte_size
from tuneforge.store.models import Checkpoint, File, TunedModel, TuningJob
from tuneforge.store.states import JobState, RequestedAction

# The Vertex location in names: any label works (the API key decides the project), and the
# README's client examples use "local".
VERTEX_LOCATION = "local"
ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.CANCELLING})
STATE_LABELS = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "running",
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLING: "cancelling",
    JobState.CANCELLED: "cancelled",
    JobState.PAUSED: "paused",
}
STAT_LABELS = {
    "tuningDatasetExampleCount": "examples",
    "totalTuningCharacterCount": "characters",
    "totalBillableCharacterCount": "billable characters",
    "totalBillableTokenCount": "billable tokens",
    "tuningStepCount": "steps",
    "totalTruncatedExampleCount": "truncated examples",
    "userInputTokenDistribution": "input tokens per example",
    "userOutputTokenDistribution": "output tokens per example",
    "userMessagePerExampleDistribution": "messages per example",
}
DISTRIBUTION_COLUMNS = ("min", "p5", "median", "mean", "p95", "max", "sum")


@dataclass(frozen=True)
class ModelNames:
    """How each surface names one tuned model or checkpoint."""

    vertex: str  # the endpoint google-genai's generate_content takes
    openai: str  # the ft: name the openai SDK takes
    cli: str  # the id the CLI and the dashboard use


def vertex_parent(project_id: str) -> str:
    return f"projects/{project_id}/locations/{VERTEX_LOCATION}"


def tuned_model_names(job: TuningJob, tuned: TunedModel) -> ModelNames:
    return ModelNames(
        vertex=f"{vertex_parent(job.project_id)}/endpoints/{tuned.id}",
        openai=fine_tuned_model_name(job),
        cli=tuned.id,
    )


def checkpoint_names(job: TuningJob, checkpoint: Checkpoint) -> ModelNames:
    return ModelNames(
        vertex=f"{vertex_parent(job.project_id)}/endpoints/{checkpoint.id}",
        openai=openai_checkpoint_name(fine_tuned_model_name(job), checkpoint.step),
        cli=checkpoint.id,
    )


def state_of_label(label: str) -> JobState:
    """The state a label names (``running``), for the jobs list's filter."""
    for state, known in STATE_LABELS.items():
        if known == label.strip().lower():
            return state
    raise InvalidArgument(
        f"state must be one of {', '.join(STATE_LABELS.values())}, got {label!r}", "state"
    )


def is_active(job: TuningJob) -> bool:
    """Whether the job may still change on its own (worth refreshing the page for)."""
    return job.state in ACTIVE_STATES


def job_actions(job: TuningJob) -> list[str]:
    """The buttons the job's state allows, as the store's rules decide them."""
    pause_requested = job.requested_action == RequestedAction.PAUSE
    actions = []
    if job.state in (JobState.QUEUED, JobState.RUNNING, JobState.PAUSED):
        actions.append("cancel")
    if job.state == JobState.QUEUED or (job.state == JobState.RUNNING and not pause_requested):
        actions.append("pause")
    if job.state == JobState.PAUSED or (job.state == JobState.RUNNING and pause_requested):
        actions.append("resume")
    return actions


@dataclass(frozen=True)
class Progress:
    percent: float  # 0 to 100
    steps: str
    epochs: str
    eta: str | None  # "about 3 min left" while running


def progress(job: TuningJob, now: datetime | None = None) -> Progress:
    done, total = job.completed_steps or 0, job.total_steps
    percent = 100.0 if job.state == JobState.SUCCEEDED else 0.0
    if total:
        percent = min(100.0, 100.0 * done / total)
    steps = f"{done} / {total}" if total else str(done)
    epochs_done = job.completed_epochs or 0
    epochs = f"{epochs_done} / {job.total_epochs}" if job.total_epochs else str(epochs_done)
    eta = None
    if job.state == JobState.RUNNING and job.estimated_finish is not None:
        left = (job.estimated_finish - (now or datetime.now(UTC))).total_seconds()
        eta = f"about {duration(max(left, 0))} left" if left > 0 else "finishing"
    return Progress(percent=percent, steps=steps, epochs=epochs, eta=eta)


@dataclass(frozen=True)
class StatsView:
    totals: list[tuple[str, Any]]
    distributions: list[tuple[str, dict[str, Any]]]


def stats_view(stats: dict[str, Any] | None) -> StatsView | None:
    """A job's ``data_stats`` (Vertex's tuning data stats) as totals and distributions."""
    if not stats:
        return None
    totals, distributions = [], []
    for key, value in stats.items():
        if isinstance(value, dict) and "buckets" in value:
            distributions.append((stat_label(key), value))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            totals.append((stat_label(key), value))
    return StatsView(totals=totals, distributions=distributions)


def stat_label(key: str) -> str:
    return STAT_LABELS.get(key) or re.sub(r"(?<!^)(?=[A-Z])", " ", key).lower()


def problems_summary(validation: dict[str, Any] | None) -> str:
    """One line about a file's validation problems: their counts and the first one ("" when
    there are none; ``file_status`` says the verdict)."""
    if not validation:
        return ""
    errors, warnings = validation.get("error_count", 0), validation.get("warning_count", 0)
    if not errors and not warnings:
        return ""
    counts = ", ".join(
        plural(n, noun) for n, noun in ((errors, "error"), (warnings, "warning")) if n
    )
    problems = validation.get("problems") or []
    if not problems:
        return counts
    first = problems[0]
    where = f"line {first['line']}" if first.get("line") else "file"
    return f"{counts}; {where}: {first.get('message', '')}"


@dataclass(frozen=True)
class FileStatus:
    label: str  # "Valid", "Valid (1 warning)", "Invalid: 3 problems", "Validating…"
    css_class: str  # the badge's class: file-processed, file-error, file-uploaded


def file_status(row: File) -> FileStatus:
    """A file's validation verdict in words (its ``status`` is the store's and OpenAI's)."""
    report = row.validation or {}
    errors, warnings = report.get("error_count", 0), report.get("warning_count", 0)
    if row.status == "processed":
        label = f"Valid ({plural(warnings, 'warning')})" if warnings else "Valid"
    elif row.status == "error":
        label = f"Invalid: {plural(errors + warnings, 'problem')}"
    else:
        label = "Validating…"
    return FileStatus(label=label, css_class=f"file-{row.status}")


# --- formats (also Jinja filters) ------------------------------------------------------------


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def timestamp(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def file_size(size: int | None) -> str:
    return "—" if size is None else byte_size(size)


def number(value: Any, decimals: int = 4) -> str:
    """An int with thousands separators, a float to ``decimals`` places, else a dash."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{decimals}g}"
    return str(value)
