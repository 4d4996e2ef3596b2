"""The scheduler: whose runners are alive, which pid a claimed job runs in, which devices."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass

import pytest

from tuneforge.config import Settings
from tuneforge.jobs.executor import RunningJob, SubprocessExecutor
from tuneforge.jobs.scheduler import Scheduler
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState
from tuneforge.store.testing import TEST_PROJECT as PROJECT

HOST = socket.gethostname()
# This test process stands for a live scheduler; its parent for another live one on this host.
OURS = f"{HOST}:{os.getpid()}"
OTHER_LIVE = f"{HOST}:{os.getppid()}"


@dataclass
class FakeProcess:
    pid: int
    returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class FakeExecutor(SubprocessExecutor):
    """Starts nothing: each runner is a FakeProcess with the given pid."""

    def __init__(self, settings: Settings, worker_id: str, pid: int = 0) -> None:
        super().__init__(settings, worker_id)
        self.pid = pid

    def start(self, job_id: str, devices: tuple[int, ...] = ()) -> RunningJob:
        running = RunningJob(job_id, FakeProcess(self.pid), devices)
        self.running[job_id] = running
        return running


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def scheduler(tmp_path, db=None, worker_id: str = OURS, pid: int = 0) -> Scheduler:
    settings = Settings(data_dir=tmp_path, slots=1)
    executor = FakeExecutor(settings, worker_id, pid)
    return Scheduler(db, settings, executor=executor, worker_id=worker_id)


def running_job(worker_id: str, runner_pid: int | None = None) -> TuningJob:
    return TuningJob(
        id="ftjob-1", state=JobState.RUNNING, worker_id=worker_id, runner_pid=runner_pid
    )


def test_our_live_runner_is_alive(tmp_path) -> None:
    ours = scheduler(tmp_path)
    ours.executor.start("ftjob-1")
    assert ours.is_alive(running_job(OURS)) is True


def test_our_runner_that_exited_or_was_lost_is_gone(tmp_path) -> None:
    ours = scheduler(tmp_path)
    assert ours.is_alive(running_job(OURS, runner_pid=os.getpid())) is False
    ours.executor.start("ftjob-1").process.returncode = 1
    assert ours.is_alive(running_job(OURS)) is False


def test_a_live_schedulers_job_on_this_host_is_not_ours_to_recover(tmp_path) -> None:
    ours = scheduler(tmp_path)
    # Claimed a moment ago: no runner pid yet. Not dead; its heartbeat decides.
    assert ours.is_alive(running_job(OTHER_LIVE)) is None
    assert ours.is_alive(running_job(OTHER_LIVE, runner_pid=os.getpid())) is True
    assert ours.is_alive(running_job(OTHER_LIVE, runner_pid=dead_pid())) is False


def test_a_dead_schedulers_job_is_gone(tmp_path) -> None:
    ours = scheduler(tmp_path)
    dead = f"{HOST}:{dead_pid()}"
    assert ours.is_alive(running_job(dead)) is False
    assert ours.is_alive(running_job(dead, runner_pid=os.getpid())) is False


def test_another_hosts_job_is_unknown(tmp_path) -> None:
    ours = scheduler(tmp_path)
    assert ours.is_alive(running_job("elsewhere:123", runner_pid=os.getpid())) is None


@pytest.mark.parametrize(
    ("running", "expected"),
    [((), (0,)), ((0,), (1,)), ((0, 1), (0,)), ((0, 1, 0), (1,))],
)
def test_devices_go_to_the_least_loaded_slot(tmp_path, running, expected) -> None:
    ours = scheduler(tmp_path)
    ours.slots = [(0,), (1,)]
    for index, device in enumerate(running):
        ours.executor.start(f"ftjob-{index}", (device,))
    assert ours._free_devices() == expected


def test_a_started_runners_pid_is_recorded_at_once(db: Database, tmp_path) -> None:
    with db.session() as s:
        repo.ensure_project(s, PROJECT)
        job = repo.create_job(s, PROJECT, base_model="tiny", training_file="f")
    runner_pid = os.getpid()  # any live process
    assert scheduler(tmp_path, db, OURS, pid=runner_pid).tick() == [job.id]
    with db.session() as s:
        assert repo.load_job(s, job.id).runner_pid == runner_pid

    # Another scheduler on this host leaves it alone, although the runner has not heartbeated.
    other = scheduler(tmp_path / "other", db, f"{HOST}:{os.getppid()}")
    other.tick()
    with db.session() as s:
        claimed = repo.load_job(s, job.id)
    assert (claimed.state, claimed.worker_id) == (JobState.RUNNING, OURS)
