"""What the scheduler asks of the store: claim the next queued job, say why jobs wait, and
recover jobs whose runner is gone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tuneforge.store.models import TuningJob
from tuneforge.store.repo_events import record_event
from tuneforge.store.repo_jobs import (
    StateChange,
    compare_and_set,
    interrupted_requeue_values,
    job_error,
)
from tuneforge.store.states import (
    ACTIVE_STATES,
    EventLevel,
    JobState,
    RequestedAction,
    SubState,
)
from tuneforge.store.types import utcnow

DEFAULT_MAX_ATTEMPTS = 3


def count_active_jobs(session: Session, worker_id: str) -> int:
    """Jobs this worker's runners hold (running or cancelling)."""
    return session.scalar(
        select(func.count())
        .select_from(TuningJob)
        .where(TuningJob.worker_id == worker_id, TuningJob.state.in_(ACTIVE_STATES))
    )


def claim_next_job(
    session: Session, worker_id: str, capacity: int, runner_handle: str | None = None
) -> TuningJob | None:
    """Take the oldest queued job for this worker, or None when there is none or all of the
    worker's ``capacity`` slots are busy (the queued jobs are then marked
    WAITING_FOR_CAPACITY). No job is ever claimed twice, with any number of workers.

    ``runner_handle`` stands in for the runner's handle until the runner starts: the
    executor's handle for the claim itself (``Executor.claim_handle``), so other schedulers can
    tell a claim whose scheduler died from one whose runner is still starting."""
    if count_active_jobs(session, worker_id) >= capacity:
        mark_waiting_for_capacity(session)
        return None
    while True:
        # PostgreSQL skips rows other workers are claiming; SQLite has no row locks (the
        # clause is left out) and relies on the conditional UPDATE below.
        job_id = session.scalar(
            select(TuningJob.id)
            .where(TuningJob.state == JobState.QUEUED)
            .order_by(TuningJob.created_at, TuningJob.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if job_id is None:
            return None
        now = utcnow()
        claimed = session.execute(
            update(TuningJob)
            .where(TuningJob.id == job_id, TuningJob.state == JobState.QUEUED)
            .values(
                state=JobState.RUNNING,
                sub_state=SubState.PROCESSING_DATASET,
                requested_action=None,
                worker_id=worker_id,
                runner_handle=runner_handle,
                attempt_count=TuningJob.attempt_count + 1,
                started_at=func.coalesce(TuningJob.started_at, now),
                heartbeat_at=now,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:
            job = session.get(TuningJob, job_id, populate_existing=True)
            assert job is not None
            record_event(session, job.id, f"tuning job started (attempt {job.attempt_count})")
            return job
        # Another worker took it between the SELECT and the UPDATE: try the next one.


def mark_waiting_for_capacity(session: Session) -> list[str]:
    """Mark queued jobs WAITING_FOR_CAPACITY (so users see why they wait); returns the ids
    newly marked, each of which also gets an event."""
    marked = session.scalars(
        update(TuningJob)
        .where(TuningJob.state == JobState.QUEUED, TuningJob.sub_state.is_(None))
        .values(sub_state=SubState.WAITING_FOR_CAPACITY)
        .returning(TuningJob.id)
        .execution_options(synchronize_session=False)
    ).all()
    for job_id in marked:
        record_event(session, job_id, "waiting for capacity: all slots are busy")
    return list(marked)


def requeue_orphans(
    session: Session,
    is_alive: Callable[[TuningJob], bool | None],
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    stale_after_s: float | None = None,
    fatal_exit: Callable[[TuningJob], tuple[str, str] | None] = lambda job: None,
) -> list[TuningJob]:
    """Recover running and cancelling jobs whose runner is gone: ``is_alive(job)`` (the
    scheduler asks its executor about ``job.runner_handle``) says False, or it says None (it
    cannot tell: a runner on another machine) and, when ``stale_after_s`` is given, the job's
    last heartbeat is older than that. A runner ``is_alive`` says is alive keeps its job
    however old its heartbeat.

    A cancelling job becomes CANCELLED; one whose pause was requested becomes PAUSED; one whose
    server was stopping (``RequestedAction.REQUEUE``) goes back to QUEUED without the attempt
    counting; one that has used ``max_attempts`` attempts becomes FAILED (code
    ``too_many_attempts``); any other goes back to QUEUED, ahead of younger jobs. A runner that
    ended in a way a new attempt would repeat (``fatal_exit(job)`` gives the error's code and
    message: killed for memory) fails its job at once, unless it was being cancelled. Returns
    the jobs changed.
    """
    now = utcnow()
    recovered = []
    # Read them all before writing: SQLite cannot start a write under a still-open read.
    active = session.scalars(select(TuningJob).where(TuningJob.state.in_(ACTIVE_STATES))).all()
    for job in active:
        reason = _why_runner_is_gone(job, is_alive, stale_after_s, now)
        if reason is None:
            continue
        fatal = fatal_exit(job) if job.state != JobState.CANCELLING else None
        if fatal is None:
            change = _recovery(job, reason, max_attempts, now)
        else:
            change = _failed(job, *fatal, now)
        # Unless the same runner still holds it and has not sent a heartbeat since we looked.
        unchanged = [
            TuningJob.worker_id == job.worker_id
            if job.worker_id is not None
            else TuningJob.worker_id.is_(None),
            TuningJob.attempt_count == job.attempt_count,
            TuningJob.heartbeat_at == job.heartbeat_at
            if job.heartbeat_at is not None
            else TuningJob.heartbeat_at.is_(None),
        ]
        if compare_and_set(session, job, change, also_require=unchanged):
            recovered.append(job)
    return recovered


def _why_runner_is_gone(
    job: TuningJob,
    is_alive: Callable[[TuningJob], bool | None],
    stale_after_s: float | None,
    now: datetime,
) -> str | None:
    alive = is_alive(job)
    if alive is False:
        return "the runner process is gone"
    if alive or stale_after_s is None:
        return None
    if job.heartbeat_at is None or now - job.heartbeat_at > timedelta(seconds=stale_after_s):
        return f"no heartbeat for over {stale_after_s:g} s"
    return None


def _failed(job: TuningJob, code: str, message: str, now: datetime) -> StateChange:
    released = {"sub_state": None, "requested_action": None, "runner_handle": None}
    return StateChange(
        JobState.FAILED,
        {**released, "ended_at": now, "error": job_error(code, message)},
        f"tuning job failed: {message}",
        EventLevel.ERROR,
    )


def _recovery(job: TuningJob, reason: str, max_attempts: int, now: datetime) -> StateChange:
    released = {"sub_state": None, "requested_action": None, "runner_handle": None}
    if job.state == JobState.CANCELLING:
        return StateChange(
            JobState.CANCELLED,
            {**released, "ended_at": now},
            f"runner lost ({reason}) while cancelling; tuning job cancelled",
        )
    if job.requested_action == RequestedAction.PAUSE:
        return StateChange(
            JobState.PAUSED,
            {**released, "worker_id": None},
            f"runner lost ({reason}) while pausing; tuning job paused",
        )
    if job.requested_action == RequestedAction.REQUEUE:
        return StateChange(
            JobState.QUEUED,
            interrupted_requeue_values(),
            f"runner stopped with its server ({reason}) before saving a resume point; requeued "
            "from the last checkpoint (not counted as an attempt)",
            EventLevel.WARNING,
        )
    if job.attempt_count >= max_attempts:
        message = f"the runner was lost on each of {job.attempt_count} attempts; last: {reason}"
        return StateChange(
            JobState.FAILED,
            {**released, "ended_at": now, "error": job_error("too_many_attempts", message)},
            f"tuning job failed: {message}",
            EventLevel.ERROR,
        )
    return StateChange(
        JobState.QUEUED,
        {**released, "worker_id": None, "heartbeat_at": None},
        f"runner lost ({reason}); requeued (attempt {job.attempt_count} of {max_attempts})",
        EventLevel.WARNING,
    )
