"""The scheduler with the subprocess executor: whose runners are alive (asked by the handle in
the job row), which handle a claimed job gets, which devices a runner gets."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tuneforge.config import Settings
from tuneforge.jobs.scheduler import Scheduler, Started
from tuneforge.jobs.subprocess_executor import (
    RUNNER_MODULE,
    SubprocessExecutor,
    SubprocessHandle,
)
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState
from tuneforge.store.testing import TEST_PROJECT as PROJECT

HOST = socket.gethostname()
# This test process stands for a live scheduler; its parent for another live one on this host.
OURS = f"{HOST}:{os.getpid()}"
OTHER_LIVE = f"{HOST}:{os.getppid()}"
# Pids no process has: fake runners that are never signalled.
FAKE_PIDS = itertools.count(4_000_000)


@dataclass
class FakeProcess:
    pid: int
    returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class FakeExecutor(SubprocessExecutor):
    """Starts nothing: each runner is a FakeProcess with the given pid (else a made-up one)."""

    def __init__(
        self, settings: Settings, worker_id: str, pid: int = 0, scheduler_pid: int | None = None
    ) -> None:
        super().__init__(settings, worker_id, scheduler_pid=scheduler_pid)
        self.pid = pid
        self.spawned: list[FakeProcess] = []

    def _spawn(self, job_id: str, devices: tuple[int, ...]) -> FakeProcess:  # type: ignore[override]
        process = FakeProcess(self.pid or next(FAKE_PIDS))
        self.spawned.append(process)
        return process


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def runner_pid() -> Iterator[int]:
    """A live process that looks like a runner (its command line names the runner module)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", RUNNER_MODULE]
    )
    yield process.pid
    process.kill()
    process.wait()


def handle(scheduler_pid: int, runner_pid: int | None = None, host: str = HOST) -> str:
    return str(SubprocessHandle(host, scheduler_pid, runner_pid))


def scheduler(
    tmp_path, db=None, worker_id: str = OURS, pid: int = 0, scheduler_pid: int | None = None
) -> Scheduler:
    settings = Settings(data_dir=tmp_path, slots=1)
    executor = FakeExecutor(settings, worker_id, pid, scheduler_pid)
    return Scheduler(db, settings, executor=executor, worker_id=worker_id)


def running_job(runner_handle: str | None, worker_id: str = OURS) -> TuningJob:
    return TuningJob(
        id="ftjob-1", state=JobState.RUNNING, worker_id=worker_id, runner_handle=runner_handle
    )


def test_our_live_runner_is_alive(tmp_path) -> None:
    ours = scheduler(tmp_path)
    started = ours.executor.start("ftjob-1")
    assert ours.is_alive(running_job(started)) is True


def test_our_runner_that_exited_or_was_lost_is_gone(tmp_path) -> None:
    ours = scheduler(tmp_path)
    assert ours.is_alive(running_job(handle(os.getpid(), runner_pid=os.getpid()))) is False
    started = ours.executor.start("ftjob-1")
    ours.executor.spawned[-1].returncode = 1
    assert ours.is_alive(running_job(started)) is False
    assert ours.is_alive(running_job(started)) is False  # and stays gone once reaped


def test_our_claim_whose_runner_never_started_is_gone(tmp_path) -> None:
    ours = scheduler(tmp_path)
    assert ours.is_alive(running_job(ours.executor.claim_handle())) is False


def test_a_live_schedulers_job_on_this_host_is_not_ours_to_recover(tmp_path, runner_pid) -> None:
    ours = scheduler(tmp_path)
    # Claimed a moment ago: no runner yet. Not dead; its heartbeat decides.
    assert ours.is_alive(running_job(handle(os.getppid()), OTHER_LIVE)) is None
    assert ours.is_alive(running_job(handle(os.getppid(), runner_pid), OTHER_LIVE)) is True
    assert ours.is_alive(running_job(handle(os.getppid(), dead_pid()), OTHER_LIVE)) is False


def test_a_dead_schedulers_job_is_gone_once_its_runner_is(tmp_path, runner_pid) -> None:
    ours = scheduler(tmp_path)
    dead = dead_pid()
    assert ours.is_alive(running_job(handle(dead), f"{HOST}:{dead}")) is False
    # Its runner is saving a resume point (it got SIGTERM as its scheduler died): alive.
    assert ours.is_alive(running_job(handle(dead, runner_pid), f"{HOST}:{dead}")) is True
    assert ours.is_alive(running_job(handle(dead, dead_pid()), f"{HOST}:{dead}")) is False
    # The runner's pid now belongs to a process that is no runner: gone.
    assert ours.is_alive(running_job(handle(dead, os.getpid()), f"{HOST}:{dead}")) is False


def test_another_hosts_job_is_unknown(tmp_path) -> None:
    ours = scheduler(tmp_path)
    elsewhere = handle(123, os.getpid(), host="elsewhere")
    assert ours.is_alive(running_job(elsewhere, "elsewhere:123")) is None


@pytest.mark.parametrize("runner_handle", [None, "k8s://ns/job", "subprocess://", "junk"])
def test_a_job_without_a_handle_we_can_read_is_left_to_its_heartbeat(
    tmp_path, runner_handle
) -> None:
    assert scheduler(tmp_path).is_alive(running_job(runner_handle)) is None


@pytest.mark.parametrize(
    ("running", "expected"),
    [((), (0,)), ((0,), (1,)), ((0, 1), (0,)), ((0, 1, 0), (1,))],
)
def test_devices_go_to_the_least_loaded_slot(tmp_path, running, expected) -> None:
    ours = scheduler(tmp_path)
    ours.slots = [(0,), (1,)]
    for index, device in enumerate(running):
        job_id = f"ftjob-{index}"
        ours.running[job_id] = Started(job_id, ours.executor.start(job_id, (device,)), (device,))
    assert ours._free_devices() == expected


def test_a_job_on_several_devices_gets_the_least_used_gpus(tmp_path) -> None:
    ours = scheduler(tmp_path)
    ours.slots = [(0,), (1,), (2,), (3,)]
    ours.running["ftjob-0"] = Started("ftjob-0", ours.executor.start("ftjob-0", (1,)), (1,))
    assert ours._free_devices(2) == (0, 2)
    assert ours._free_devices(4) == (0, 1, 2, 3)


def test_a_started_runners_handle_is_recorded_at_once(db: Database, tmp_path, runner_pid) -> None:
    with db.session() as s:
        repo.ensure_project(s, PROJECT)
        job = repo.create_job(s, PROJECT, base_model="tiny", training_file="f")
    assert scheduler(tmp_path, db, OURS, pid=runner_pid).tick() == [job.id]
    with db.session() as s:
        assert repo.load_job(s, job.id).runner_handle == handle(os.getpid(), runner_pid)

    # Another scheduler on this host leaves it alone, although the runner has not heartbeated.
    other = scheduler(tmp_path / "other", db, OTHER_LIVE, scheduler_pid=os.getppid())
    other.tick()
    with db.session() as s:
        claimed = repo.load_job(s, job.id)
    assert (claimed.state, claimed.worker_id) == (JobState.RUNNING, OURS)


def test_a_claim_whose_runner_failed_to_start_is_requeued(db: Database, tmp_path) -> None:
    with db.session() as s:
        repo.ensure_project(s, PROJECT)
        job = repo.create_job(s, PROJECT, base_model="tiny", training_file="f")
    ours = scheduler(tmp_path, db)

    def cannot_start(job_id: str, devices: tuple[int, ...]) -> FakeProcess:
        raise OSError("no such interpreter")

    ours.executor._spawn = cannot_start  # type: ignore[method-assign]
    with pytest.raises(OSError):
        ours.tick()
    with db.session() as s:
        claimed = repo.load_job(s, job.id)
    # Other schedulers see a live claimant that is starting the runner, not a lost one.
    assert claimed.runner_handle == handle(os.getpid())
    other = scheduler(tmp_path / "other", db, OTHER_LIVE, scheduler_pid=os.getppid())
    assert other.is_alive(claimed) is None

    del ours.executor._spawn  # starts work again; the claim without a runner is recovered
    assert ours.tick() == [job.id]
    with db.session() as s:
        restarted = repo.load_job(s, job.id)
        events = [e.message for e in repo.list_events(s, job.id)]
    assert (restarted.state, restarted.attempt_count) == (JobState.RUNNING, 2)
    assert "runner lost (the runner process is gone); requeued (attempt 1 of 3)" in events
