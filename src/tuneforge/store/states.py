"""The store's vocabulary (job states and the other closed sets of values) and the job state
machine: which state may follow which."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from tuneforge.errors import Conflict


class JobState(StrEnum):
    QUEUED = "JOB_STATE_QUEUED"
    RUNNING = "JOB_STATE_RUNNING"
    SUCCEEDED = "JOB_STATE_SUCCEEDED"
    FAILED = "JOB_STATE_FAILED"
    CANCELLING = "JOB_STATE_CANCELLING"
    CANCELLED = "JOB_STATE_CANCELLED"
    PAUSED = "JOB_STATE_PAUSED"


class SubState(StrEnum):
    """What a queued or running job is doing right now (shown to the user)."""

    PROCESSING_DATASET = "PROCESSING_DATASET"
    WAITING_FOR_CAPACITY = "WAITING_FOR_CAPACITY"
    TUNING = "TUNING"
    POST_PROCESSING = "POST_PROCESSING"


class RequestedAction(StrEnum):
    """What the runner of a job must do at its next step boundary."""

    CANCEL = "cancel"
    PAUSE = "pause"
    # The server or worker running it is stopping (SIGTERM, or its death): save a resume point
    # and go back to the queue. Not the job's fault, so it is not counted as an attempt.
    REQUEUE = "requeue"


class FileStatus(StrEnum):
    """An uploaded file's status, as OpenAI's files show it: stored and being validated,
    then valid or not."""

    UPLOADED = "uploaded"
    PROCESSED = "processed"
    ERROR = "error"


class Mode(StrEnum):
    PEFT = "peft"
    FULL = "full"


class EventLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class EventType(StrEnum):
    MESSAGE = "message"
    METRICS = "metrics"


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
)

# States in which a runner owns the job (it holds a slot and sends heartbeats).
ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.RUNNING, JobState.CANCELLING})

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset(
        {JobState.RUNNING, JobState.PAUSED, JobState.CANCELLED, JobState.FAILED}
    ),
    # RUNNING -> QUEUED is recovery requeueing a job whose runner is gone.
    JobState.RUNNING: frozenset(
        {
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.CANCELLING,
            JobState.PAUSED,
            JobState.QUEUED,
        }
    ),
    JobState.CANCELLING: frozenset({JobState.CANCELLED, JobState.FAILED}),
    JobState.PAUSED: frozenset({JobState.QUEUED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class HasState(Protocol):
    id: str
    state: JobState


def check_transition(current: JobState, new: JobState, job_id: str = "") -> None:
    """Raise Conflict unless a job may move from ``current`` to ``new``."""
    if new not in ALLOWED_TRANSITIONS[JobState(current)]:
        subject = f"job {job_id}" if job_id else "a job"
        raise Conflict(f"{subject} is {current}; it cannot become {new}")


def transition(job: HasState, new: JobState) -> None:
    """Move ``job`` to ``new`` in memory, or raise Conflict if the state machine forbids it."""
    check_transition(job.state, new, job.id)
    job.state = new
