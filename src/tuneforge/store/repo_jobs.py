"""Tuning jobs: create, read, list, and every change of state.

Every change of a job's state is a compare-and-set: ``UPDATE ... WHERE id = :id AND state =
:state_read``. If another process changed the job in between (a user cancels as the runner
finishes), no row matches; the job is read again and the decision made again. This works the
same on SQLite (one writer at a time) and PostgreSQL (any number of workers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from tuneforge.errors import Conflict, InvalidArgument, NotFound
from tuneforge.store.models import TunedModel, TuningJob
from tuneforge.store.records import JobRecord, RecordShape, TunedModelRecord
from tuneforge.store.repo_common import (
    DEFAULT_PAGE_SIZE,
    Page,
    get_scoped,
    paginate,
    require_project,
)
from tuneforge.store.repo_events import record_event
from tuneforge.store.states import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    EventLevel,
    JobState,
    Mode,
    RequestedAction,
    SubState,
    check_transition,
)
from tuneforge.store.types import json_string, new_id, utcnow

# How often a decision is retried when the job keeps changing under it.
MAX_RACES = 5
# A page of jobs holds at most this many, whatever limit is asked: a job may carry 37 KB of
# metadata (64 pairs of 64 + 512 characters), so a list response stays under about 4 MB.
MAX_JOBS_PER_PAGE = 100


def new_job_id() -> str:
    return new_id("tj")


def job_error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """The shape of ``TuningJob.error``."""
    return {"code": code, "message": message, "param": param}


@dataclass
class StateChange:
    """What to write to a job (``state`` None keeps its state) and the event that says so."""

    state: JobState | None
    values: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    level: EventLevel = EventLevel.INFO


def compare_and_set(
    session: Session,
    job: TuningJob,
    change: StateChange,
    *,
    also_require: Iterable[ColumnElement[bool]] = (),
) -> bool:
    """Apply ``change`` if the job is still in the state it was read in (and ``also_require``
    holds). Returns False, with ``job`` re-read, when it was changed meanwhile."""
    values = dict(change.values)
    if change.state is not None:
        check_transition(job.state, change.state, job.id)
        values["state"] = change.state
    result = session.execute(
        update(TuningJob)
        .where(TuningJob.id == job.id, TuningJob.state == job.state, *also_require)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(job)
    if result.rowcount != 1:
        return False
    if change.message:
        record_event(session, job.id, change.message, level=change.level)
    return True


def apply_decision(
    session: Session,
    job: TuningJob,
    decide: Callable[[TuningJob], StateChange | None],
    *,
    also_require: Iterable[ColumnElement[bool]] = (),
) -> TuningJob:
    """Ask ``decide`` what to do with the job as it is now (None: nothing), apply it with
    compare-and-set, and ask again if the job changed meanwhile. ``decide`` raises Conflict
    when nothing may be done."""
    also_require = list(also_require)
    for _ in range(MAX_RACES):
        change = decide(job)
        if change is None or compare_and_set(session, job, change, also_require=also_require):
            return job
    raise Conflict(f"job {job.id} keeps changing; try again")


def create_job(
    session: Session,
    project_id: str,
    *,
    base_model: str,
    training_file: str,
    method: str = "supervised",
    mode: Mode | str = Mode.PEFT,
    hyperparameters: Mapping[str, Any] | None = None,
    validation_file: str | None = None,
    teacher_model: str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    suffix: str | None = None,
    seed: int | None = None,
    devices: int = 1,
    metadata: Mapping[str, Any] | None = None,
    total_epochs: int | None = None,
    job_id: str | None = None,
) -> TuningJob:
    require_project(session, project_id)
    job = TuningJob(
        id=job_id or new_job_id(),
        project_id=project_id,
        base_model=base_model,
        training_file=training_file,
        method=method,
        mode=_parse(Mode, mode, "mode"),
        hyperparameters=dict(hyperparameters or {}),
        validation_file=validation_file,
        teacher_model=teacher_model,
        display_name=display_name,
        description=description,
        suffix=suffix,
        seed=seed,
        devices=devices,
        user_metadata=dict(metadata or {}),
        total_epochs=total_epochs,
        state=JobState.QUEUED,
    )
    session.add(job)
    session.flush()
    record_event(session, job.id, "created tuning job")
    return job


def _parse(enum_class: Any, value: Any, param: str) -> Any:
    try:
        return enum_class(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_class)
        raise InvalidArgument(f"{param} must be one of {allowed}", param=param) from None


# What a read of a user's job loads with it in the same query (a LEFT JOIN on a unique key),
# rather than the relationship's own second SELECT: every view of a job names its tuned model.
WITH_TUNED_MODEL = joinedload(TuningJob.tuned_model)


def get_job(session: Session, project_id: str, job_id: str) -> TuningJob:
    return get_scoped(
        session, TuningJob, project_id, job_id, "tuning job", options=[WITH_TUNED_MODEL]
    )


def load_job(session: Session, job_id: str) -> TuningJob:
    """A job by id in any project: for the scheduler and runner, never for a user's request."""
    job = session.get(TuningJob, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"tuning job {job_id!r} not found")
    return job


JOBS = TuningJob.__table__.c
JOB_RECORD = RecordShape(TuningJob, JobRecord)
TUNED_MODEL_RECORD = RecordShape(TunedModel, TunedModelRecord)
# A job and its tuned model, if any, in one row (a LEFT JOIN on a unique key). The reads are
# built once, with bound parameters: building one and computing its cache key cost as much as
# running it (paginate).
_JOB_RECORDS = select(*JOB_RECORD.columns, *TUNED_MODEL_RECORD.columns).select_from(
    TuningJob.__table__.outerjoin(
        TunedModel.__table__, TunedModel.__table__.c.job_id == TuningJob.__table__.c.id
    )
)
_PROJECT_JOBS = _JOB_RECORDS.where(JOBS.project_id == bindparam("project_id"))
_PROJECT_JOBS_IN_STATES = _PROJECT_JOBS.where(JOBS.state.in_(bindparam("states", expanding=True)))
_PROJECT_JOB = _PROJECT_JOBS.where(JOBS.id == bindparam("job_id"))


def _load_job_records(
    session: Session | Connection, query: Select[Any], params: Mapping[str, Any]
) -> list[JobRecord]:
    split = len(JOB_RECORD.keys)
    records = []
    for row in session.execute(query, params):
        job = JOB_RECORD.make(row[:split])
        tuned = row[split:]
        job.tuned_model = TUNED_MODEL_RECORD.make(tuned) if tuned[0] is not None else None
        records.append(job)
    return records


def read_job(session: Session | Connection, project_id: str, job_id: str) -> JobRecord:
    """A job of the project with its tuned model, as a read-only record (see
    :mod:`tuneforge.store.records`); NotFound for a missing job and another project's alike."""
    found = _load_job_records(session, _PROJECT_JOB, {"project_id": project_id, "job_id": job_id})
    if not found:
        raise NotFound(f"tuning job {job_id!r} not found")
    return found[0]


def list_jobs(
    session: Session | Connection,
    project_id: str,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    after: str | None = None,
    states: Iterable[JobState | str] | None = None,
    metadata: Mapping[str, str] | None = None,
    search: str | None = None,
) -> Page[JobRecord]:
    """The project's jobs, newest first (at most MAX_JOBS_PER_PAGE a page), optionally only
    those in ``states``, those whose metadata holds every key-value pair of ``metadata``
    (string values, compared exactly) and those whose id, display name, suffix or base model
    contains ``search`` (ignoring case; ``%`` and ``_`` are plain characters).

    The metadata filter runs in the database, so a page costs one query however few jobs
    match; ``after`` may still name any job of the (state-filtered) list, as it could when the
    filter ran after paging. The jobs are read-only records, each with its tuned model."""
    params: dict[str, Any] = {"project_id": project_id}
    query = _PROJECT_JOBS
    if states is not None:
        query = _PROJECT_JOBS_IN_STATES
        params["states"] = [JobState(s) for s in states]
    matches = [
        json_string(JOBS["metadata"], key) == value for key, value in (metadata or {}).items()
    ]
    if search and search.strip():
        term = search.strip().lower()
        searched = (JOBS.id, JOBS.display_name, JOBS.suffix, JOBS.base_model)
        matches.append(or_(*(func.lower(c).contains(term, autoescape=True) for c in searched)))
    return paginate(
        session,
        query,
        JOBS,
        limit=limit,
        after=after,
        params=params,
        narrowed_by=matches,
        most=MAX_JOBS_PER_PAGE,
        load=_load_job_records,
    )


def request_cancel(session: Session, project_id: str, job_id: str) -> TuningJob:
    """Cancel at once when no runner holds the job; otherwise CANCELLING until its runner
    stops at the next step boundary. Cancelling a CANCELLING job changes nothing."""

    def decide(job: TuningJob) -> StateChange | None:
        if job.state in (JobState.QUEUED, JobState.PAUSED):
            return StateChange(
                JobState.CANCELLED,
                {"ended_at": utcnow(), "sub_state": None, "requested_action": None},
                "tuning job cancelled",
            )
        if job.state == JobState.RUNNING:
            return StateChange(
                JobState.CANCELLING,
                {"requested_action": RequestedAction.CANCEL},
                "cancellation requested",
            )
        if job.state == JobState.CANCELLING:
            return None
        raise Conflict(f"job {job.id} is {job.state}; only an unfinished job can be cancelled")

    return apply_decision(session, get_job(session, project_id, job_id), decide)


def request_pause(session: Session, project_id: str, job_id: str) -> TuningJob:
    """Pause a queued job at once; ask a running job's runner to save a checkpoint and stop."""

    def decide(job: TuningJob) -> StateChange | None:
        if job.state == JobState.QUEUED:
            return StateChange(JobState.PAUSED, {"sub_state": None}, "tuning job paused")
        if job.state == JobState.RUNNING:
            if job.requested_action == RequestedAction.PAUSE:
                return None
            return StateChange(None, {"requested_action": RequestedAction.PAUSE}, "pause requested")
        if job.state == JobState.PAUSED:
            return None
        raise Conflict(f"job {job.id} is {job.state}; only a queued or running job can pause")

    return apply_decision(session, get_job(session, project_id, job_id), decide)


def resume_job(session: Session, project_id: str, job_id: str) -> TuningJob:
    """Queue a paused job again (it keeps its place: FIFO is by creation), or withdraw a pause
    request that its runner has not acted on yet."""

    def decide(job: TuningJob) -> StateChange | None:
        if job.state == JobState.PAUSED:
            return StateChange(
                JobState.QUEUED,
                {"sub_state": None, "requested_action": None, "worker_id": None},
                "tuning job resumed",
            )
        if job.state == JobState.RUNNING and job.requested_action == RequestedAction.PAUSE:
            return StateChange(None, {"requested_action": None}, "pause request withdrawn")
        raise Conflict(f"job {job.id} is {job.state}; only a paused job can be resumed")

    return apply_decision(session, get_job(session, project_id, job_id), decide)


def request_requeue(session: Session, job_id: str, reason: str) -> bool:
    """Ask a running job's runner to save a resume point at its next step boundary and go back
    to the queue, because ``reason`` (its server is stopping), not the job, ends the run.
    Returns whether it was asked: a cancel or pause already asked for wins, and a job that is
    not running has nothing to save."""
    job = load_job(session, job_id)
    if job.state != JobState.RUNNING or job.requested_action is not None:
        return False
    change = StateChange(
        None,
        {"requested_action": RequestedAction.REQUEUE},
        f"{reason}: saving a resume point; the job goes back to the queue",
        EventLevel.WARNING,
    )
    return compare_and_set(
        session, job, change, also_require=[TuningJob.requested_action.is_(None)]
    )


def interrupted_requeue_values() -> dict[str, Any]:
    """A job going back to the queue because its server stopped: released by its runner, and
    the attempt it was on not counted (the claim counted it)."""
    return {
        "sub_state": None,
        "requested_action": None,
        "runner_handle": None,
        "worker_id": None,
        "heartbeat_at": None,
        "attempt_count": TuningJob.attempt_count - 1,
    }


def requeue_interrupted(
    session: Session, job_id: str, message: str, *, worker_id: str | None = None
) -> TuningJob:
    """The runner's last word after ``request_requeue``: its resume point is saved, the job is
    QUEUED again (ahead of younger jobs), and this attempt does not count."""
    owner = [TuningJob.worker_id == worker_id] if worker_id is not None else []

    def decide(job: TuningJob) -> StateChange:
        _owned_by_runner(job, worker_id)
        if job.requested_action != RequestedAction.REQUEUE:
            raise Conflict(f"job {job.id} was not asked to go back to the queue")
        return StateChange(JobState.QUEUED, interrupted_requeue_values(), message)

    return apply_decision(session, load_job(session, job_id), decide, also_require=owner)


def _owned_by_runner(job: TuningJob, worker_id: str | None) -> None:
    if job.state not in ACTIVE_STATES:
        raise Conflict(f"job {job.id} is {job.state}; its runner must stop")
    if worker_id is not None and job.worker_id != worker_id:
        raise Conflict(
            f"job {job.id} now belongs to worker {job.worker_id!r}; this runner must stop"
        )


def _update_active_job(
    session: Session, job_id: str, worker_id: str | None, values: dict[str, Any]
) -> TuningJob:
    job = load_job(session, job_id)
    owner = [TuningJob.worker_id == worker_id] if worker_id is not None else []

    def decide(current: TuningJob) -> StateChange:
        _owned_by_runner(current, worker_id)
        return StateChange(None, values)

    return apply_decision(session, job, decide, also_require=owner)


def heartbeat(
    session: Session,
    job_id: str,
    *,
    worker_id: str | None = None,
    runner_handle: str | None = None,
) -> TuningJob:
    """Record that the job's runner is alive (and, given ``runner_handle``, how its executor
    names it); the job returned tells it whether a cancel or pause was requested. Raises
    Conflict when the runner no longer owns the job (it was requeued, or finished) and must
    stop."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if runner_handle is not None:
        values["runner_handle"] = runner_handle
    return _update_active_job(session, job_id, worker_id, values)


def update_progress(
    session: Session,
    job_id: str,
    *,
    worker_id: str | None = None,
    sub_state: SubState | str | None = None,
    completed_steps: int | None = None,
    total_steps: int | None = None,
    completed_epochs: int | None = None,
    total_epochs: int | None = None,
    trained_tokens: int | None = None,
    disk_bytes: int | None = None,
    estimated_finish: datetime | None = None,
    data_stats: Mapping[str, Any] | None = None,
    resolved_hyperparameters: Mapping[str, Any] | None = None,
) -> TuningJob:
    """Set the given progress fields of a running job (None leaves a field as it is); counts as
    a heartbeat."""
    given = {
        "sub_state": SubState(sub_state) if sub_state is not None else None,
        "completed_steps": completed_steps,
        "total_steps": total_steps,
        "completed_epochs": completed_epochs,
        "total_epochs": total_epochs,
        "trained_tokens": trained_tokens,
        "disk_bytes": disk_bytes,
        "estimated_finish": estimated_finish,
        "data_stats": dict(data_stats) if data_stats is not None else None,
        "resolved_hyperparameters": (
            dict(resolved_hyperparameters) if resolved_hyperparameters is not None else None
        ),
    }
    values = {name: value for name, value in given.items() if value is not None}
    values["heartbeat_at"] = utcnow()
    return _update_active_job(session, job_id, worker_id, values)


def finish_job(
    session: Session,
    job_id: str,
    state: JobState | str,
    error: Mapping[str, Any] | None = None,
    *,
    worker_id: str | None = None,
) -> TuningJob:
    """The runner's last word: SUCCEEDED, FAILED (with ``error``), CANCELLED (after a cancel
    request) or PAUSED (after a pause request; the job can be resumed later)."""
    state = JobState(state)
    if state not in TERMINAL_STATES and state != JobState.PAUSED:
        raise InvalidArgument(f"a runner cannot finish a job as {state}", param="state")
    values: dict[str, Any] = {"sub_state": None, "requested_action": None, "runner_handle": None}
    if state == JobState.PAUSED:
        values["worker_id"] = None
    else:
        values["ended_at"] = utcnow()
    if state == JobState.FAILED:
        error = error or {}
        values["error"] = job_error(
            error.get("code") or "unknown_error",
            error.get("message") or "the job failed without a reported reason",
            error.get("param"),
        )
    elif error is not None:
        raise InvalidArgument(f"only a failed job has an error, not a {state} one", param="error")
    message = {
        JobState.SUCCEEDED: "tuning job succeeded",
        JobState.CANCELLED: "tuning job cancelled",
        JobState.PAUSED: "tuning job paused",
    }.get(state) or f"tuning job failed: {values['error']['message']}"
    level = EventLevel.ERROR if state == JobState.FAILED else EventLevel.INFO
    owner = [TuningJob.worker_id == worker_id] if worker_id is not None else []

    def decide(job: TuningJob) -> StateChange:
        _owned_by_runner(job, worker_id)
        return StateChange(state, values, message, level)

    return apply_decision(session, load_job(session, job_id), decide, also_require=owner)
