"""The runner's bookkeeping in the store: heartbeats, and its last word on a job."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from tuneforge.jobs import runner
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TunedModel, TuningJob
from tuneforge.store.states import JobState
from tuneforge.store.testing import TEST_PROJECT as PROJECT
from tuneforge.store.types import utcnow

SUCCEEDED = SimpleNamespace(default_checkpoint=None)


def claimed_job(db: Database, worker_id: str = "w1") -> TuningJob:
    with db.session() as s:
        repo.ensure_project(s, PROJECT)
        repo.create_job(s, PROJECT, base_model="tiny", training_file="f")
        job = repo.claim_next_job(s, worker_id, capacity=10)
        s.execute(
            update(TuningJob)
            .where(TuningJob.id == job.id)
            .values(heartbeat_at=utcnow() - timedelta(hours=1))
        )
    return job


def heartbeat_age(db: Database, job_id: str) -> timedelta:
    with db.session() as s:
        return utcnow() - repo.load_job(s, job_id).heartbeat_at


def has_tuned_model(db: Database, job_id: str) -> bool:
    with db.session() as s:
        return s.scalar(select(TunedModel.id).where(TunedModel.job_id == job_id)) is not None


def test_heartbeats_go_on_between_steps_and_survive_a_database_hiccup(db, monkeypatch) -> None:
    job = claimed_job(db)
    real_heartbeat = runner.repo.heartbeat
    calls = []

    def flaky_heartbeat(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        return real_heartbeat(*args, **kwargs)

    monkeypatch.setattr(runner.repo, "heartbeat", flaky_heartbeat)
    with runner.heartbeats(db, job.id, "w1", interval_s=0.02):
        deadline = time.monotonic() + 10
        while heartbeat_age(db, job.id) > timedelta(minutes=1) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(calls) >= 2
    assert heartbeat_age(db, job.id) < timedelta(minutes=1)


def test_heartbeats_stop_quietly_once_the_job_is_no_longer_ours(db) -> None:
    job = claimed_job(db)
    with db.session() as s:
        repo.finish_job(s, job.id, JobState.SUCCEEDED)
    with runner.heartbeats(db, job.id, "w1", interval_s=0.01):
        time.sleep(0.1)


def test_success_creates_the_tuned_model(db) -> None:
    job = claimed_job(db)
    runner._finish_succeeded(db, job, SUCCEEDED, "w1")
    with db.session() as s:
        assert repo.load_job(s, job.id).state == JobState.SUCCEEDED
    assert has_tuned_model(db, job.id)


def test_cancelled_during_post_processing_ends_cancelled_without_a_model(db) -> None:
    job = claimed_job(db)
    with db.session() as s:
        repo.request_cancel(s, PROJECT, job.id)
    runner._finish_succeeded(db, job, SUCCEEDED, "w1")
    with db.session() as s:
        assert repo.load_job(s, job.id).state == JobState.CANCELLED
    assert not has_tuned_model(db, job.id)


def test_a_runner_that_lost_its_job_neither_succeeds_nor_fails_it(db) -> None:
    job = claimed_job(db, "w1")
    with db.session() as s:
        repo.requeue_orphans(s, lambda _: False)
        repo.claim_next_job(s, "w2", capacity=10)
    runner._fail(db, job.id, "w1", "internal_error", "boom")
    runner._finish_succeeded(db, job, SUCCEEDED, "w1")
    with db.session() as s:
        again = repo.load_job(s, job.id)
    assert (again.state, again.worker_id, again.error) == (JobState.RUNNING, "w2", None)
    assert not has_tuned_model(db, job.id)


def test_a_jobs_spec_carries_its_methods_own_hyperparameters(db) -> None:
    with db.session() as s:
        repo.ensure_project(s, PROJECT)
        job = repo.create_job(
            s,
            PROJECT,
            base_model="tiny",
            training_file="f",
            method="preference",
            hyperparameters={"beta": 0.2, "epochs": 2, "pre_tuned_model": None},
        )
    spec = runner._spec_for(job, db, settings=None)
    assert (spec.method, spec.hyperparameters.beta, spec.hyperparameters.epochs) == (
        "preference",
        0.2,
        2,
    )


def test_a_hyperparameter_the_method_does_not_take_is_ignored_with_a_warning(db) -> None:
    """A supervised job queued before methods had their own types may hold a ``beta``."""
    with db.session() as s:
        repo.ensure_project(s, PROJECT)
        job = repo.create_job(
            s, PROJECT, base_model="tiny", training_file="f", hyperparameters={"beta": 0.2}
        )
    warnings = []
    observer = SimpleNamespace(on_event=lambda message, level: warnings.append(message))
    spec = runner._spec_for(job, db, settings=None, observer=observer)
    assert "beta" not in spec.hyperparameters.model_dump()
    assert warnings == ["the supervised method takes no beta; ignored"]
