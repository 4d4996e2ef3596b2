"""Claiming queued jobs: FIFO, capacity, and never the same job twice."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState, SubState
from tuneforge.store.testing import TEST_PROJECT as PROJECT

JOBS = 20
THREADS = 8


def queue_jobs(session: Session, count: int) -> list[str]:
    return [
        repo.create_job(session, PROJECT, base_model="tiny", training_file="f").id
        for _ in range(count)
    ]


def test_jobs_are_claimed_first_come_first_served(session: Session) -> None:
    ids = queue_jobs(session, 5)
    repo.request_pause(session, PROJECT, ids[1])
    repo.request_cancel(session, PROJECT, ids[3])
    claimed = []
    while (job := repo.claim_next_job(session, "w", capacity=10)) is not None:
        claimed.append(job)
    assert [job.id for job in claimed] == [ids[0], ids[2], ids[4]]
    first = claimed[0]
    assert (first.state, first.sub_state, first.worker_id) == (
        JobState.RUNNING,
        SubState.PROCESSING_DATASET,
        "w",
    )
    assert first.attempt_count == 1
    assert first.started_at is not None and first.heartbeat_at is not None
    events = [e.message for e in repo.list_events(session, first.id)]
    assert events[-1] == "tuning job started (attempt 1)"


def test_a_claim_holds_the_claimants_handle_until_the_runner_has_one(session: Session) -> None:
    """Other schedulers can ask the claimant's executor about a job whose runner is starting;
    the runner's handle replaces it, and its last word releases it."""
    [job_id] = queue_jobs(session, 1)
    claimed = repo.claim_next_job(session, "w", capacity=10, runner_handle="test://w")
    assert (claimed.id, claimed.runner_handle) == (job_id, "test://w")
    beat = repo.heartbeat(session, job_id, worker_id="w", runner_handle="test://w/runner-1")
    assert beat.runner_handle == "test://w/runner-1"
    assert repo.heartbeat(session, job_id, worker_id="w").runner_handle == "test://w/runner-1"
    done = repo.finish_job(session, job_id, JobState.SUCCEEDED, worker_id="w")
    assert done.runner_handle is None


def test_jobs_beyond_capacity_wait_and_say_so(session: Session) -> None:
    ids = queue_jobs(session, 4)
    assert repo.claim_next_job(session, "w", capacity=2).id == ids[0]
    assert repo.claim_next_job(session, "w", capacity=2).id == ids[1]
    assert repo.count_active_jobs(session, "w") == 2

    assert repo.claim_next_job(session, "w", capacity=2) is None
    for job_id in ids[2:]:
        waiting = repo.load_job(session, job_id)
        assert (waiting.state, waiting.sub_state) == (
            JobState.QUEUED,
            SubState.WAITING_FOR_CAPACITY,
        )
        assert repo.list_events(session, job_id)[-1].message.startswith("waiting for capacity")
    # Marked once, not at every scheduler tick.
    assert repo.claim_next_job(session, "w", capacity=2) is None
    assert repo.mark_waiting_for_capacity(session) == []

    # Capacity is per worker: another worker still has free slots.
    other = repo.claim_next_job(session, "w2", capacity=1)
    assert (other.id, other.sub_state) == (ids[2], SubState.PROCESSING_DATASET)

    repo.finish_job(session, ids[0], JobState.SUCCEEDED)
    assert repo.claim_next_job(session, "w", capacity=2).id == ids[3]


def test_concurrent_workers_never_claim_a_job_twice(db: Database) -> None:
    with db.session() as session:
        repo.ensure_project(session, PROJECT)
        ids = queue_jobs(session, JOBS)

    claims: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(worker_id: str) -> None:
        try:
            start.wait()
            while True:
                with db.session() as session:
                    job = repo.claim_next_job(session, worker_id, capacity=JOBS)
                    if job is None:
                        return
                    claims.append((job.id, worker_id))
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert Counter(job_id for job_id, _ in claims) == Counter(ids)

    with db.session() as session:
        jobs = session.scalars(select(TuningJob)).all()
    owner = dict(claims)
    assert all(job.state == JobState.RUNNING and job.attempt_count == 1 for job in jobs)
    assert all(job.worker_id == owner[job.id] for job in jobs)
