"""The scheduler needs nothing of an executor but the ``Executor`` protocol.

``MemoryExecutor`` implements the protocol's six methods and nothing else, with no processes:
if the scheduler used anything more, these tests would fail with an AttributeError.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update

from tuneforge.config import Settings
from tuneforge.jobs.executor import Executor
from tuneforge.jobs.scheduler import STALE_HEARTBEAT_S, Scheduler
from tuneforge.jobs.subprocess_executor import SubprocessExecutor
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState, RequestedAction, SubState
from tuneforge.store.testing import TEST_PROJECT as PROJECT
from tuneforge.store.types import utcnow


class MemoryExecutor:
    """Runners are entries in a dict; the test decides when one is lost. It answers only for
    the handles it made: another executor's are None (cannot tell from here)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.alive: dict[str, bool] = {}
        self.started: list[tuple[str, tuple[int, ...]]] = []
        self.stopped: list[str] = []
        self.interrupted: list[str] = []
        self.on_interrupt: Callable[[str], None] | None = None  # what the runner does then
        self._serial = itertools.count(1)

    def claim_handle(self) -> str:
        return f"memory://{self.name}/claim"

    def start(self, job_id: str, devices: tuple[int, ...] = ()) -> str:
        handle = f"memory://{self.name}/{job_id}/{next(self._serial)}"
        self.alive[handle] = True
        self.started.append((job_id, devices))
        return handle

    def is_alive(self, handle: str) -> bool | None:
        return self.alive.get(handle)

    def exit_cause(self, handle: str) -> str | None:
        return None  # its runners are only ever lost

    def interrupt(self, handle: str) -> None:
        if self.alive.get(handle):
            self.interrupted.append(handle)
            if self.on_interrupt:
                self.on_interrupt(handle)

    def stop(self, handle: str) -> None:
        if self.alive.get(handle):
            self.alive[handle] = False
            self.stopped.append(handle)


def make_scheduler(db: Database, tmp_path, name: str = "a", slots: int = 1) -> Scheduler:
    settings = Settings(data_dir=tmp_path / name, slots=slots)
    return Scheduler(db, settings, executor=MemoryExecutor(name), worker_id=f"worker-{name}")


def queue_jobs(db: Database, count: int = 1) -> list[str]:
    with db.session() as s:
        repo.ensure_project(s, PROJECT)
        return [
            repo.create_job(s, PROJECT, base_model="tiny", training_file="f").id
            for _ in range(count)
        ]


def load(db: Database, job_id: str) -> TuningJob:
    with db.session() as s:
        return repo.load_job(s, job_id)


def events(db: Database, job_id: str) -> list[str]:
    with db.session() as s:
        return [e.message for e in repo.list_events(s, job_id)]


def test_both_executors_have_the_protocols_methods(tmp_path) -> None:
    assert isinstance(MemoryExecutor("a"), Executor)
    assert isinstance(SubprocessExecutor(Settings(data_dir=tmp_path), "w"), Executor)


def test_a_claimed_job_is_started_and_its_handle_recorded(db: Database, tmp_path) -> None:
    [job_id] = queue_jobs(db)
    scheduler = make_scheduler(db, tmp_path)
    executor = scheduler.executor
    assert scheduler.tick() == [job_id]
    assert executor.started == [(job_id, ())]
    [handle] = executor.alive
    job = load(db, job_id)
    assert (job.state, job.worker_id, job.runner_handle) == (JobState.RUNNING, "worker-a", handle)

    assert scheduler.tick() == []  # alive: it keeps its job and its slot
    assert load(db, job_id).runner_handle == handle
    assert executor.started == [(job_id, ())]


def test_a_lost_runners_job_is_requeued_and_started_again(db: Database, tmp_path) -> None:
    [job_id] = queue_jobs(db)
    scheduler = make_scheduler(db, tmp_path)
    executor = scheduler.executor
    scheduler.tick()
    [first] = executor.alive
    executor.alive[first] = False  # the runner died

    assert scheduler.tick() == [job_id]  # recovered, then claimed again in the same round
    job = load(db, job_id)
    second = job.runner_handle
    assert second not in (first, None) and executor.alive[second] is True
    assert (job.state, job.attempt_count) == (JobState.RUNNING, 2)
    assert events(db, job_id)[-2:] == [
        "runner lost (the runner process is gone); requeued (attempt 1 of 3)",
        "tuning job started (attempt 2)",
    ]


def test_a_runner_the_executor_cannot_see_is_left_to_its_heartbeat(db: Database, tmp_path) -> None:
    [job_id] = queue_jobs(db)
    theirs = make_scheduler(db, tmp_path, "b")
    theirs.tick()
    ours = make_scheduler(db, tmp_path, "a")

    assert ours.tick() == []  # their handle means nothing to our executor: None
    assert load(db, job_id).worker_id == "worker-b"

    stale = utcnow() - timedelta(seconds=STALE_HEARTBEAT_S + 60)
    with db.session() as s:
        s.execute(update(TuningJob).where(TuningJob.id == job_id).values(heartbeat_at=stale))
    assert ours.tick() == [job_id]
    job = load(db, job_id)
    assert (job.worker_id, job.attempt_count) == ("worker-a", 2)
    assert job.runner_handle.startswith("memory://a/")
    assert any("no heartbeat for over 120 s" in message for message in events(db, job_id))


def test_slots_fill_with_devices_and_free_when_a_runner_is_gone(db: Database, tmp_path) -> None:
    first, second, third = queue_jobs(db, 3)
    scheduler = make_scheduler(db, tmp_path, slots=2)
    scheduler.slots = [(0,), (1,)]
    executor = scheduler.executor

    assert scheduler.tick() == [first, second]
    assert executor.started == [(first, (0,)), (second, (1,))]
    assert load(db, third).sub_state == SubState.WAITING_FOR_CAPACITY

    with db.session() as s:  # the first runner's last word, then its process ends
        repo.finish_job(s, first, JobState.SUCCEEDED, worker_id="worker-a")
    assert scheduler.tick() == []  # still running as far as the executor knows
    assert load(db, first).runner_handle is None  # its last word released the handle
    executor.alive[scheduler.running[first].handle] = False

    assert scheduler.tick() == [third]
    assert executor.started[-1] == (third, (0,))
    assert load(db, first).state == JobState.SUCCEEDED  # a finished job is not recovered


def test_stopping_the_scheduler_requeues_its_jobs_without_counting_the_attempt(
    db: Database, tmp_path
) -> None:
    saves, hangs = queue_jobs(db, 2)
    scheduler = make_scheduler(db, tmp_path, slots=2)
    executor = scheduler.executor
    scheduler.tick()
    handles = {job_id: started.handle for job_id, started in scheduler.running.items()}

    def runner_saves_a_resume_point(handle: str) -> None:
        if handle == handles[saves]:  # the other runner never answers
            with db.session() as s:
                repo.requeue_interrupted(s, saves, "resume point saved", worker_id="worker-a")
            executor.alive[handle] = False

    executor.on_interrupt = runner_saves_a_resume_point
    scheduler.stop(grace_s=0.5)

    assert sorted(executor.interrupted) == sorted(handles.values())
    assert executor.stopped == [handles[hangs]]  # killed once the grace period was over
    assert scheduler.running == {}
    job = load(db, saves)
    assert (job.state, job.attempt_count, job.worker_id) == (JobState.QUEUED, 0, None)
    assert "worker-a is stopping: saving a resume point" in " ".join(events(db, saves))

    # The killed runner's job is recovered by the next scheduler, its attempt not counted.
    hung = load(db, hangs)
    assert (hung.state, hung.requested_action) == (JobState.RUNNING, RequestedAction.REQUEUE)
    successor = Scheduler(db, scheduler.settings, executor=executor, worker_id="worker-b")
    assert sorted(successor.tick()) == sorted([saves, hangs])
    assert [load(db, job_id).attempt_count for job_id in (saves, hangs)] == [1, 1]
    assert any("not counted as an attempt" in message for message in events(db, hangs))


def test_a_job_interrupted_by_many_restarts_is_not_failed(db: Database, tmp_path) -> None:
    [job_id] = queue_jobs(db)
    executor = MemoryExecutor("host")  # one machine, its server restarted five times
    settings = Settings(data_dir=tmp_path)
    for restart in range(5):  # more than the three attempts a failing job gets
        scheduler = Scheduler(db, settings, executor=executor, worker_id=f"server-{restart}")
        assert scheduler.tick() == [job_id]
        scheduler.stop(grace_s=0)  # the runner is killed at once
    job = load(db, job_id)
    assert (job.state, job.attempt_count) == (JobState.RUNNING, 1)
    assert job.error is None
