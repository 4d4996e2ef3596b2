"""Recovery of jobs whose runner is gone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from tuneforge.errors import Conflict
from tuneforge.store import repo
from tuneforge.store.models import TuningJob
from tuneforge.store.states import EventLevel, JobState
from tuneforge.store.testing import TEST_PROJECT as PROJECT
from tuneforge.store.types import utcnow


def gone(job: TuningJob) -> bool:
    return False


def alive(job: TuningJob) -> bool:
    return True


def unknown(job: TuningJob) -> None:
    """A runner on another machine: only its heartbeat can tell."""
    return None


def claim(session: Session, worker_id: str = "w1") -> TuningJob:
    job = repo.claim_next_job(session, worker_id, capacity=10)
    assert job is not None
    return job


def queue_job(session: Session) -> TuningJob:
    return repo.create_job(session, PROJECT, base_model="tiny", training_file="f")


def test_a_lost_runners_job_is_requeued_ahead_of_younger_jobs(session: Session) -> None:
    job = queue_job(session)
    claim(session)
    younger = queue_job(session)

    recovered = repo.requeue_orphans(session, gone)
    assert [j.id for j in recovered] == [job.id]
    requeued = repo.load_job(session, job.id)
    assert (requeued.state, requeued.worker_id, requeued.attempt_count) == (
        JobState.QUEUED,
        None,
        1,
    )
    assert requeued.runner_handle is None
    last = repo.list_events(session, job.id)[-1]
    assert last.level == EventLevel.WARNING
    assert last.message == "runner lost (the runner process is gone); requeued (attempt 1 of 3)"

    again = claim(session, "w2")
    assert (again.id, again.attempt_count, again.worker_id) == (job.id, 2, "w2")
    assert repo.load_job(session, younger.id).state == JobState.QUEUED


def test_the_old_runner_cannot_touch_a_requeued_job(session: Session) -> None:
    job = queue_job(session)
    claim(session, "w1")
    repo.requeue_orphans(session, gone)
    claim(session, "w2")
    with pytest.raises(Conflict):
        repo.heartbeat(session, job.id, worker_id="w1")
    with pytest.raises(Conflict):
        repo.finish_job(session, job.id, JobState.SUCCEEDED, worker_id="w1")
    assert repo.heartbeat(session, job.id, worker_id="w2").state == JobState.RUNNING


def test_after_three_lost_attempts_the_job_fails_with_the_reason(session: Session) -> None:
    job = queue_job(session)
    for _ in range(3):
        claim(session)
        repo.requeue_orphans(session, gone, max_attempts=3)
    failed = repo.load_job(session, job.id)
    assert failed.state == JobState.FAILED and failed.ended_at is not None
    assert failed.attempt_count == 3
    assert failed.error["code"] == "too_many_attempts"
    assert "3 attempts" in failed.error["message"]
    assert "the runner process is gone" in failed.error["message"]
    messages = [e.message for e in repo.list_events(session, job.id)]
    assert sum("requeued" in m for m in messages) == 2
    assert messages[-1].startswith("tuning job failed:")
    assert repo.claim_next_job(session, "w1", capacity=10) is None


def test_a_cancelling_job_whose_runner_is_gone_is_cancelled(session: Session) -> None:
    job = queue_job(session)
    claim(session)
    repo.request_cancel(session, PROJECT, job.id)
    repo.requeue_orphans(session, gone)
    cancelled = repo.load_job(session, job.id)
    assert (cancelled.state, cancelled.requested_action) == (JobState.CANCELLED, None)
    assert cancelled.ended_at is not None


def test_a_pausing_job_whose_runner_is_gone_is_paused(session: Session) -> None:
    job = queue_job(session)
    claim(session)
    repo.request_pause(session, PROJECT, job.id)
    repo.requeue_orphans(session, gone)
    assert repo.load_job(session, job.id).state == JobState.PAUSED


def test_a_stale_heartbeat_counts_as_gone(session: Session) -> None:
    stale, fresh = queue_job(session), queue_job(session)
    claim(session)
    claim(session)
    session.execute(
        update(TuningJob)
        .where(TuningJob.id == stale.id)
        .values(heartbeat_at=utcnow() - timedelta(minutes=5))
    )
    recovered = repo.requeue_orphans(session, unknown, stale_after_s=60)
    assert [j.id for j in recovered] == [stale.id]
    assert "no heartbeat for over 60 s" in repo.list_events(session, stale.id)[-1].message
    assert repo.load_job(session, fresh.id).state == JobState.RUNNING
    assert repo.requeue_orphans(session, unknown) == []


def test_a_live_runner_keeps_its_job_however_old_its_heartbeat(session: Session) -> None:
    """A long phase without steps (loading a big model, a teacher writing answers) is no
    reason to take the job from a runner the scheduler can see alive."""
    job = queue_job(session)
    claim(session)
    session.execute(
        update(TuningJob)
        .where(TuningJob.id == job.id)
        .values(heartbeat_at=utcnow() - timedelta(minutes=30))
    )
    assert repo.requeue_orphans(session, alive, stale_after_s=60) == []
    assert repo.load_job(session, job.id).state == JobState.RUNNING


def test_is_alive_is_asked_about_each_active_job_and_its_handle(session: Session) -> None:
    job = queue_job(session)
    repo.claim_next_job(session, "w1", capacity=10, runner_handle="test://w1")
    repo.heartbeat(session, job.id, worker_id="w1", runner_handle="test://w1/7")
    asked = []
    repo.requeue_orphans(session, lambda job: asked.append((job.id, job.runner_handle)))
    assert asked == [(job.id, "test://w1/7")]


def test_only_jobs_a_runner_holds_are_examined(session: Session) -> None:
    queued, paused, done = queue_job(session), queue_job(session), queue_job(session)
    repo.request_pause(session, PROJECT, paused.id)
    claim(session)  # `queued` is the oldest queued one
    repo.finish_job(session, queued.id, JobState.SUCCEEDED)
    claim(session)
    repo.finish_job(session, done.id, JobState.SUCCEEDED)
    examined = []
    repo.requeue_orphans(session, lambda job: examined.append(job.id) or False)
    assert examined == []
