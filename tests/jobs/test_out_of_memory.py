"""A runner the kernel's OOM killer ends fails its job once, saying what to change; it is not
retried (the same settings would be killed again) nor told apart from a lost runner by luck."""

from __future__ import annotations

import pytest

from tests.jobs.test_executor_protocol import MemoryExecutor, events, load, queue_jobs
from tests.jobs.test_subprocess_executor import ScriptExecutor, wait_until_gone
from tuneforge.config import Settings
from tuneforge.jobs import subprocess_executor
from tuneforge.jobs.out_of_memory import killed_by_oom, oom_kill_count
from tuneforge.jobs.scheduler import Scheduler
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.states import JobState

KILLS_ITSELF = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"


# --- the cgroup's counter ---------------------------------------------------------------------


def test_the_oom_kill_count_is_read_from_cgroup_v2(tmp_path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/tuneforge.service\n")
    group = tmp_path / "root" / "system.slice" / "tuneforge.service"
    group.mkdir(parents=True)
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    assert oom_kill_count(proc, tmp_path / "root") == 2


def test_the_oom_kill_count_is_read_from_cgroup_v1(tmp_path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("5:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n")
    group = tmp_path / "root" / "memory" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n")
    assert oom_kill_count(proc, tmp_path / "root") == 7


def test_inside_a_container_the_mounts_root_stands_for_the_cgroup(tmp_path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/kubepods/pod1/abc\n")  # a host path the container cannot see
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "memory.events").write_text("oom 1\noom_kill 1\n")
    assert oom_kill_count(proc, tmp_path / "root") == 1


def test_no_counter_to_read_is_none(tmp_path) -> None:
    assert oom_kill_count(tmp_path / "missing", tmp_path) is None
    proc = tmp_path / "cgroup"
    proc.write_text("0::/\n")
    assert oom_kill_count(proc, tmp_path / "empty") is None


@pytest.mark.parametrize(
    ("sigkill", "before", "after", "oom"),
    [
        (True, 3, 4, True),  # the counter rose while it ran: the OOM killer
        (True, 3, 3, False),  # someone's kill -9
        (True, None, None, True),  # nothing to ask: the likeliest sender
        (False, 3, 4, False),  # it exited otherwise: another process was killed
    ],
)
def test_which_exits_count_as_killed_for_memory(sigkill, before, after, oom) -> None:
    assert killed_by_oom(sigkill, before, after) is oom


# --- the subprocess executor ------------------------------------------------------------------


def counts(monkeypatch, *values: int | None) -> None:
    """The cgroup's OOM-kill count as the executor reads it, one value per read."""
    answers = iter(values)
    monkeypatch.setattr(subprocess_executor, "oom_kill_count", lambda: next(answers))


def test_a_runner_killed_as_the_oom_killer_does_is_out_of_memory(tmp_path, monkeypatch) -> None:
    counts(monkeypatch, 0, 1)
    executor = ScriptExecutor(Settings(data_dir=tmp_path), KILLS_ITSELF)
    handle = executor.start("ftjob-1")
    wait_until_gone(executor, handle)
    assert executor.exit_cause(handle) == "out_of_memory"


def test_a_kill_9_without_an_oom_kill_is_a_lost_runner(tmp_path, monkeypatch) -> None:
    counts(monkeypatch, 5, 5)
    executor = ScriptExecutor(Settings(data_dir=tmp_path), KILLS_ITSELF)
    handle = executor.start("ftjob-1")
    wait_until_gone(executor, handle)
    assert executor.exit_cause(handle) is None


def test_our_own_stop_and_a_plain_exit_are_no_oom(tmp_path, monkeypatch) -> None:
    counts(monkeypatch, None, None, None, None)  # no counter: only who sent SIGKILL tells
    settings = Settings(data_dir=tmp_path)
    sleeper = ScriptExecutor(settings, "import time; time.sleep(60)")
    handle = sleeper.start("ftjob-1")
    sleeper.stop(handle)
    assert sleeper.exit_cause(handle) is None
    failing = ScriptExecutor(settings, "import sys; sys.exit(1)")
    handle = failing.start("ftjob-2")
    wait_until_gone(failing, handle)
    assert failing.exit_cause(handle) is None


# --- the scheduler ------------------------------------------------------------------------------


class OomExecutor(MemoryExecutor):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.out_of_memory: set[str] = set()

    def exit_cause(self, handle: str) -> str | None:
        return "out_of_memory" if handle in self.out_of_memory else None


@pytest.mark.parametrize("mode", ["peft", "full"])
def test_an_oom_killed_runners_job_fails_once_saying_what_to_change(
    db: Database, tmp_path, mode
) -> None:
    [job_id] = queue_jobs(db)
    with db.session() as s:
        repo.load_job(s, job_id).mode = mode
    executor = OomExecutor("a")
    scheduler = Scheduler(
        db, Settings(data_dir=tmp_path, slots=1), executor=executor, worker_id="worker-a"
    )
    scheduler.tick()
    [handle] = executor.alive
    executor.alive[handle] = False
    executor.out_of_memory.add(handle)

    assert scheduler.tick() == []  # not started again
    job = load(db, job_id)
    assert job.state == JobState.FAILED and job.attempt_count == 1
    assert job.error["code"] == "out_of_memory"
    message = job.error["message"]
    assert "out of memory" in message and "batch_size" in message
    assert "max_seq_length" in message
    assert ("mode peft" in message) is (mode == "full")
    assert events(db, job_id)[-1] == f"tuning job failed: {message}"
    assert executor.started == [(job_id, ())]
