"""Twenty jobs submitted at once from threads each run exactly once, on SQLite and on
PostgreSQL: twenty clients submit through the API together, then three schedulers share the
database and claim jobs side by side."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from tests.api.conftest import Api
from tuneforge.jobs.scheduler import Scheduler
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.states import TERMINAL_STATES, JobState

pytestmark = pytest.mark.both_databases

JOBS = 20
SCHEDULERS = 3
JOBS_URL = "/v1/projects/p/locations/us-central1/tuningJobs"
DEADLINE_S = 60.0


class RecordingExecutor:
    """Runs no training: records each start, then does what a runner does at the end (a
    heartbeat as the job's owner, then SUCCEEDED), all through the store. An ``Executor``
    by the protocol alone: its runs are over by the time ``start`` returns."""

    def __init__(self, scheduler_db: Database, worker_id: str, starts: list) -> None:
        self.db = scheduler_db
        self.worker_id = worker_id
        self.starts = starts

    def claim_handle(self) -> str:
        return f"recording://{self.worker_id}"

    def start(self, job_id: str, devices: tuple[int, ...] = ()) -> str:
        self.starts.append((self.worker_id, job_id))
        time.sleep(random.uniform(0, 0.005))  # let the other schedulers interleave
        with self.db.session() as s:
            repo.heartbeat(s, job_id, worker_id=self.worker_id)
            repo.finish_job(s, job_id, JobState.SUCCEEDED, worker_id=self.worker_id)
        return f"recording://{self.worker_id}/{job_id}"

    def is_alive(self, handle: str) -> bool | None:
        # Our runs have ended; another scheduler's claims are not ours to judge.
        return False if handle.startswith(f"recording://{self.worker_id}/") else None

    def interrupt(self, handle: str) -> None:
        pass

    def stop(self, handle: str) -> None:
        pass


def submit_at_once(api: Api, training_file: str) -> list[str]:
    body = {
        "baseModel": "tuneforge/tiny-chat",
        "supervisedTuningSpec": {"trainingDatasetUri": training_file},
    }
    barrier = threading.Barrier(JOBS)
    names: list[str] = []
    failures: list[str] = []

    def submit() -> None:
        barrier.wait()
        response = api.client.post(JOBS_URL, json=body, headers=api.headers())
        if response.status_code == 200:
            names.append(response.json()["name"])
        else:
            failures.append(response.text)

    threads = [threading.Thread(target=submit) for _ in range(JOBS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return [name.rsplit("/", 1)[-1] for name in names]


def unfinished(db: Database) -> int:
    with db.session() as s:
        page = repo.list_jobs(s, "default", limit=1000)
        return sum(job.state not in TERMINAL_STATES for job in page.items)


def run_schedulers(db: Database, settings, starts: list) -> list[BaseException]:
    schedulers = [
        Scheduler(
            db,
            settings,
            worker_id=f"worker-{index}",
            executor=RecordingExecutor(db, f"worker-{index}", starts),
        )
        for index in range(SCHEDULERS)
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(SCHEDULERS)
    deadline = time.monotonic() + DEADLINE_S

    def work(scheduler: Scheduler) -> None:
        barrier.wait()
        try:
            while unfinished(db) and time.monotonic() < deadline:
                scheduler.tick()
        except BaseException as err:  # reported by the test below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_twenty_jobs_submitted_at_once_each_run_exactly_once(api: Api, sentiment_files):
    upload = api.client.post(
        "/v1/files",
        headers=api.headers(),
        files={"file": ("train.jsonl", sentiment_files["train"].read_bytes())},
        data={"purpose": "fine-tune"},
    )
    job_ids = submit_at_once(api, upload.json()["id"])
    assert len(set(job_ids)) == JOBS

    starts: list[tuple[str, str]] = []
    db = api.service.db
    errors = run_schedulers(db, api.service.settings, starts)
    assert errors == []

    started = Counter(job_id for _, job_id in starts)
    assert started == Counter({job_id: 1 for job_id in job_ids})
    for job_id in job_ids:
        job = api.service.jobs.get("default", job_id).job
        assert (job.state, job.attempt_count) == (JobState.SUCCEEDED, 1)
        events = [e.message for e in api.service.jobs.events("default", job_id)]
        assert events.count("tuning job started (attempt 1)") == 1
    listed = api.client.get(JOBS_URL, params={"pageSize": 100}, headers=api.headers()).json()
    assert {job["state"] for job in listed["tuningJobs"]} == {"JOB_STATE_SUCCEEDED"}
