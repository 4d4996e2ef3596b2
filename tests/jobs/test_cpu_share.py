"""Training and serving share the CPU's cores: one job alone gets them all, and the threads of
the runners and the server's inference together never exceed the cores, save that each gets at
least one."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import pytest
import torch

from tests.jobs.test_executor_protocol import MemoryExecutor, queue_jobs
from tests.jobs.test_subprocess_executor import ScriptExecutor, wait_until_gone
from tuneforge.config import Settings
from tuneforge.engine.callbacks import TokenCounter, TuningCallback
from tuneforge.jobs.cpu_share import share_file, split
from tuneforge.jobs.scheduler import Scheduler
from tuneforge.models import threads
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.states import JobState


@pytest.mark.parametrize(
    ("cores", "runners", "serving", "expected"),
    [
        (8, 1, False, 8),  # one job alone: every core
        (8, 1, True, 4),  # training and serving: half each
        (8, 2, False, 4),
        (8, 2, True, 2),  # 2 + 2 for the runners, 4 left for the inference
        (16, 3, True, 4),
    ],
)
def test_the_split_never_gives_out_more_threads_than_cores(cores, runners, serving, expected):
    each, inference = split(cores, runners, serving)
    assert each == expected
    assert each * runners + (inference if serving else 0) <= cores


@pytest.mark.parametrize(
    ("cores", "runners", "serving"),
    [(2, 2, True), (1, 1, True), (2, 3, False), (4, 6, True)],
)
def test_more_consumers_than_cores_still_get_a_thread_each(cores, runners, serving):
    # The floor: a runner cannot run on zero threads, so here the total exceeds the cores.
    assert split(cores, runners, serving) == (1, 1)
    assert runners + (1 if serving else 0) > cores


def test_the_scheduler_writes_each_runners_share_and_sets_the_inferences(
    db: Database, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(threads, "_process_share", None)
    serving = False
    settings = Settings(data_dir=tmp_path, slots=2)
    scheduler = Scheduler(
        db, settings, executor=MemoryExecutor("a"), worker_id="a", serving=lambda: serving
    )
    scheduler.cores = 8
    first, second = queue_jobs(db, 2)
    scheduler.tick()
    assert share_file(settings, first).read_text() == "4\n"  # two jobs run

    for handle in list(scheduler.executor.alive):
        if first in handle:
            scheduler.executor.alive[handle] = False  # the first job ended
    with db.session() as s:
        repo.load_job(s, first).state = JobState.CANCELLED  # over: nothing to recover
    scheduler.tick()
    assert share_file(settings, second).read_text() == "8\n"  # alone: every core
    assert not share_file(settings, first).exists()  # an ended job's folder keeps no share

    serving = True  # the server loaded a model to chat with
    scheduler.tick()
    assert share_file(settings, second).read_text() == "4\n"
    assert threads._process_share == 4


def test_a_share_written_as_a_run_freed_its_folder_goes_when_the_runner_does(
    db: Database, tmp_path
) -> None:
    """The run ends and frees its folder while its process is still exiting; the server then
    loads a model to chat with, so the scheduler writes a new share for that runner. Once the
    runner is gone, the share goes too: nothing is left in the freed folder."""
    serving = False
    settings = Settings(data_dir=tmp_path, slots=2)
    scheduler = Scheduler(
        db, settings, executor=MemoryExecutor("a"), worker_id="a", serving=lambda: serving
    )
    scheduler.cores = 8
    (job_id,) = queue_jobs(db, 1)
    scheduler.tick()
    share_file(settings, job_id).unlink()  # the run freed its folder
    serving = True
    scheduler.tick()
    assert share_file(settings, job_id).read_text() == "4\n"  # the runner is still exiting

    for handle in list(scheduler.executor.alive):
        scheduler.executor.alive[handle] = False
    with db.session() as s:
        repo.load_job(s, job_id).state = JobState.SUCCEEDED
    scheduler.tick()
    assert not share_file(settings, job_id).exists()


def test_a_job_run_again_gets_its_share_anew(db: Database, tmp_path) -> None:
    """The runner was lost after its run freed the job's folder, share file and all; the job is
    recovered and claimed again in the same round: the new runner must find its share."""
    settings = Settings(data_dir=tmp_path, slots=1)
    scheduler = Scheduler(db, settings, executor=MemoryExecutor("a"), worker_id="a")
    scheduler.cores = 8
    (job_id,) = queue_jobs(db, 1)
    scheduler.tick()
    share_file(settings, job_id).unlink()
    for handle in list(scheduler.executor.alive):
        scheduler.executor.alive[handle] = False
    scheduler.tick()
    assert [started for started, _ in scheduler.executor.started] == [job_id, job_id]
    assert share_file(settings, job_id).read_text() == "8\n"


def test_stopping_the_scheduler_removes_its_runners_shares(db: Database, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, slots=2)
    scheduler = Scheduler(db, settings, executor=MemoryExecutor("a"), worker_id="a")
    jobs = queue_jobs(db, 2)
    scheduler.tick()
    assert all(share_file(settings, job_id).exists() for job_id in jobs)
    scheduler.stop(grace_s=0)
    assert not any(share_file(settings, job_id).exists() for job_id in jobs)


@pytest.fixture
def large_model_on_cpu(monkeypatch):
    """A model this process counts as large (every model is, here), and torch's threads
    restored afterwards."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "SMALL_MODEL_PARAMETERS", 0)
    monkeypatch.setattr(threads, "_parameters_on_cpu", weakref.WeakKeyDictionary())
    monkeypatch.setattr(threads, "_file_cache", None)
    yield torch.nn.Linear(4, 4)
    torch.set_num_threads(before)


def write(path: Path, threads_: int, stamp_ns: int) -> None:
    path.write_text(f"{threads_}\n")
    os.utime(path, ns=(stamp_ns, stamp_ns))  # a distinct mtime, however fast the test runs


def test_a_runner_follows_its_share_file_before_each_step(
    large_model_on_cpu, tmp_path, monkeypatch
) -> None:
    share = tmp_path / "cpu_threads"
    write(share, 3, 1_000_000_000)
    monkeypatch.setenv(threads.SHARE_FILE_ENV, str(share))
    threads.fit_cpu_threads(large_model_on_cpu)  # loading the model
    assert torch.get_num_threads() == 3

    write(share, 2, 2_000_000_000)  # another job started
    callback = TuningCallback(MemoryObserver(), TokenCounter(lambda f: f), tmp_path, patience=1)
    callback.on_step_begin(None, None, None)
    assert torch.get_num_threads() == 2


def test_without_a_share_a_large_model_gets_the_processs_share_or_every_core(
    large_model_on_cpu, monkeypatch
) -> None:
    monkeypatch.delenv(threads.SHARE_FILE_ENV, raising=False)
    monkeypatch.setattr(threads, "_cores", lambda: 6)
    monkeypatch.setattr(threads, "_process_share", None)
    threads.fit_cpu_threads(large_model_on_cpu)
    assert torch.get_num_threads() == 6
    threads.set_process_share(2)  # the scheduler: two runners of three threads each
    threads.fit_cpu_threads()  # before a generation
    assert torch.get_num_threads() == 2


def test_each_rank_of_a_multi_device_job_takes_its_part_of_the_share(
    large_model_on_cpu, tmp_path, monkeypatch
) -> None:
    share = tmp_path / "cpu_threads"
    write(share, 5, 3_000_000_000)
    monkeypatch.setenv(threads.SHARE_FILE_ENV, str(share))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # set by torch's launcher in each rank
    threads.fit_cpu_threads(large_model_on_cpu)
    assert torch.get_num_threads() == 2
    write(share, 1, 4_000_000_000)  # never below one thread
    threads.fit_cpu_threads()
    assert torch.get_num_threads() == 1


def test_small_models_go_back_to_one_thread_once_the_large_one_is_gone(monkeypatch) -> None:
    """A long-running server: it loaded a large model, its cache evicted it, and now it serves
    only tiny ones, which run fastest on one thread."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "SMALL_MODEL_PARAMETERS", 100)
    monkeypatch.setattr(threads, "_parameters_on_cpu", weakref.WeakKeyDictionary())
    monkeypatch.setattr(threads, "cpu_share", lambda: 2)
    try:
        tiny, large = torch.nn.Linear(2, 2), torch.nn.Linear(20, 20)
        threads.fit_cpu_threads(tiny)
        threads.fit_cpu_threads(large)
        assert threads.largest_model_on_cpu() == 420
        assert torch.get_num_threads() == 2

        del large  # evicted, and its last request has ended
        gc.collect()
        threads.fit_cpu_threads()  # before the next generation
        assert threads.largest_model_on_cpu() == 6
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_runner_is_told_where_its_share_is(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    script = f"import os; print('share', os.environ[{threads.SHARE_FILE_ENV!r}])"
    executor = ScriptExecutor(settings, script)
    handle = executor.start("ftjob-1")
    wait_until_gone(executor, handle)
    log = (storage_for(settings).job_dir("ftjob-1") / "logs" / "runner.log").read_text()
    assert f"share {share_file(settings, 'ftjob-1')}" in log


class MemoryObserver:
    def stop_requested(self):
        return None
