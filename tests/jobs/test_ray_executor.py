"""The Ray executor against a real local Ray (2 CPUs, started once for the module): jobs run
as Ray actors through the scheduler, a multi-device job's ranks as Ray actors of their own, and
cancel, graceful stops, kills and a killed worker end as they do for a subprocess runner."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import typer

from tuneforge.cli.serve import worker
from tuneforge.config import Settings, get_settings
from tuneforge.jobs.executor import Executor, executor_for
from tuneforge.jobs.ray_executor import RayExecutor, RayHandle, RayUnavailable, connect
from tuneforge.jobs.scheduler import Scheduler
from tuneforge.jobs.subprocess_executor import process_alive
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.db import open_database
from tuneforge.store.states import TERMINAL_STATES, JobState

TINY = "tuneforge/tiny-chat"
PROJECT = "default"
JOB_TIMEOUT_S = 180.0
RESUME_EVERY = 5  # steps between resume points in the jobs that are stopped mid-training
# Two ranks' loss of a step is the single process's token mean summed in another order.
LOSS_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp_dir = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must stay short
    started = time.monotonic()
    ray.init(num_cpus=2, _temp_dir=temp_dir, include_dashboard=False, log_to_driver=False)
    print(f"local Ray started in {time.monotonic() - started:.1f} s")
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def ray_settings(settings, sentiment_files) -> Settings:
    return settings.model_copy(
        update={
            "executor": "ray",
            "dataset_roots": [sentiment_files["train"].parent],
            "resume_point_steps": RESUME_EVERY,
        }
    )


@pytest.fixture
def scheduler(ray_cluster, ray_settings):
    db = open_database(ray_settings.resolved_database_url)
    scheduler = Scheduler(db, ray_settings, worker_id="ray-test")
    yield scheduler
    scheduler.stop(grace_s=0)
    db.dispose()


def create_job(scheduler: Scheduler, train: Path, devices: int = 1, **hyperparameters) -> str:
    with scheduler.db.session() as s:
        repo.ensure_project(s, PROJECT)
        job = repo.create_job(
            s,
            PROJECT,
            base_model=TINY,
            training_file=str(train),
            hyperparameters=hyperparameters,
            devices=devices,
        )
        return job.id


def events(scheduler: Scheduler, job_id: str) -> list[str]:
    with scheduler.db.session() as s:
        return [e.message for e in repo.list_events(s, job_id)]


def diagnosis(scheduler: Scheduler, job_id: str) -> str:
    log = storage_for(scheduler.settings).job_dir(job_id) / "logs" / "runner.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no runner.log)"
    return f"events: {events(scheduler, job_id)}\nrunner log (end): {tail}"


def run_until(scheduler: Scheduler, job_id: str, condition, what: str):
    """Tick the scheduler until ``condition(job)`` holds; returns the job."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        scheduler.tick()
        with scheduler.db.session() as s:
            job = repo.load_job(s, job_id)
        if condition(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; {diagnosis(scheduler, job_id)}")


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return process_alive(pid)  # not Linux, or gone
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until(condition, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def resume_points(messages: list[str]) -> list[int]:
    return [int(m.rsplit(" ", 1)[1]) for m in messages if m.startswith("saved a resume point")]


def test_handles_name_the_cluster_and_the_actor_or_the_claim() -> None:
    started = RayHandle("10.0.0.5:6379", "runner-ftjob-1-abcd")
    claimed = RayHandle("10.0.0.5:6379", None, "head", 41)
    assert str(started) == "ray://10.0.0.5:6379/runner-ftjob-1-abcd"
    assert str(claimed) == "ray://10.0.0.5:6379/claim/head/41"
    assert RayHandle.parse(str(started)) == started
    assert RayHandle.parse(str(claimed)) == claimed
    for other in ("", "subprocess://h/1/2", "ray://", "ray://x", "ray://x/claim/h/p"):
        assert RayHandle.parse(other) is None


def test_without_ray_installed_the_error_says_what_to_install(
    monkeypatch, capsys, tmp_path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setenv("TUNEFORGE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    monkeypatch.setattr("tuneforge.cli.serve.get_settings", Settings)
    with pytest.raises(RayUnavailable, match=r"pip install 'tuneforge\[ray\]'"):
        connect(None)
    with pytest.raises(typer.Exit):
        worker(interval=0.5, executor="ray", ray_address=None)
    assert "pip install 'tuneforge[ray]'" in capsys.readouterr().err


@pytest.mark.slow
def test_an_unreachable_cluster_stops_a_worker_with_a_clear_error(tmp_path) -> None:
    pytest.importorskip("ray")
    env = {**os.environ, "TUNEFORGE_DATA_DIR": str(tmp_path), "RAY_AUTH_MODE": "disabled"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tuneforge.cli.main", "worker", "--executor", "ray",
         "--ray-address", "127.0.0.1:9"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    print(f"refused in {time.monotonic() - started:.1f} s")
    assert result.returncode == 1, result.stderr
    assert "the Ray cluster at '127.0.0.1:9'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_job_runs_as_a_ray_actor_and_succeeds(scheduler, sentiment_files) -> None:
    assert isinstance(scheduler.executor, RayExecutor)
    assert isinstance(scheduler.executor, Executor)
    assert scheduler.capacity == 2  # the cluster's CPUs
    job_id = create_job(scheduler, sentiment_files["train"], epochs=1, batch_size=16)

    started = time.monotonic()
    assert scheduler.tick() == [job_id]
    handle = scheduler.running[job_id].handle
    assert handle.startswith(f"ray://{scheduler.executor.cluster}/runner-{job_id}-")
    with scheduler.db.session() as s:
        assert repo.load_job(s, job_id).runner_handle == handle  # for any other scheduler
    done = run_until(scheduler, job_id, lambda j: j.state in TERMINAL_STATES, "the job to end")
    print(f"job on Ray: {time.monotonic() - started:.1f} s from claim to end")
    assert done.state == JobState.SUCCEEDED, diagnosis(scheduler, job_id)
    # The runner records the outcome, then releases the job's folder: the actor ends after.
    wait_until(lambda: scheduler.executor.is_alive(handle) is False, "the actor to end", 30)
    # Another scheduler on the same cluster sees the actor gone too.
    other = executor_for(scheduler.settings, "other", scheduler.db)
    wait_until(lambda: other.is_alive(handle) is False, "the actor to be gone for others", 30)
    with scheduler.db.session() as s:
        assert repo.list_checkpoints(s, job_id)
    log = storage_for(scheduler.settings).job_dir(job_id) / "logs" / "runner.log"
    assert f"job {job_id}: runner in Ray worker" in log.read_text()  # where a subprocess's goes


@pytest.mark.slow
def test_cancel_and_stop_end_the_actor(scheduler, sentiment_files) -> None:
    executor = scheduler.executor
    cancelled = create_job(scheduler, sentiment_files["train"], epochs=3, batch_size=4)
    killed = create_job(scheduler, sentiment_files["train"], epochs=3, batch_size=4)
    run_until(scheduler, cancelled, lambda j: j.completed_steps >= 2, "a few steps")
    handles = {job_id: scheduler.running[job_id].handle for job_id in (cancelled, killed)}
    assert all(executor.is_alive(h) for h in handles.values())

    # A user's cancel reaches the runner through the store; its actor then ends.
    with scheduler.db.session() as s:
        repo.request_cancel(s, PROJECT, cancelled)
    done = run_until(scheduler, cancelled, lambda j: j.state in TERMINAL_STATES, "the cancel")
    assert done.state == JobState.CANCELLED, diagnosis(scheduler, cancelled)
    # The runner records the state first, then releases the job's folder: the actor ends after.
    actor = handles[cancelled]
    wait_until(lambda: executor.is_alive(actor) is False, "the cancelled job's actor to end", 30)

    # ``stop`` kills the actor's worker at once; recovery then requeues its job.
    pid = executor.worker_pid(handles[killed])
    executor.stop(handles[killed])
    assert executor.is_alive(handles[killed]) is False
    wait_until(lambda: not running(pid), "the killed worker to exit")
    scheduler.running.pop(killed)
    with scheduler.db.session() as s:
        [recovered] = repo.requeue_orphans(s, scheduler.is_alive)
        assert (recovered.id, recovered.state) == (killed, JobState.QUEUED)
        repo.request_cancel(s, PROJECT, killed)


@pytest.mark.slow
def test_a_graceful_stop_saves_a_resume_point_and_requeues(scheduler, sentiment_files) -> None:
    job_id = create_job(scheduler, sentiment_files["train"], epochs=2, batch_size=4)
    run_until(scheduler, job_id, lambda j: j.completed_steps >= 2, "a few steps")
    handle = scheduler.running[job_id].handle

    scheduler.stop_runners(grace_s=60)  # interrupt: the actor's runner saves and requeues

    assert scheduler.executor.is_alive(handle) is False
    with scheduler.db.session() as s:
        job = repo.load_job(s, job_id)
        assert (job.state, job.attempt_count) == (JobState.QUEUED, 0), diagnosis(scheduler, job_id)
        repo.request_cancel(s, PROJECT, job_id)
    assert any(m.startswith("resume point saved at step") for m in events(scheduler, job_id))


@pytest.mark.slow
def test_a_killed_ray_worker_is_requeued_and_resumes_from_its_checkpoint(
    scheduler, sentiment_files
) -> None:
    job_id = create_job(scheduler, sentiment_files["train"], epochs=1, batch_size=4)
    run_until(
        scheduler,
        job_id,
        lambda j: any(p >= 2 * RESUME_EVERY for p in resume_points(events(scheduler, job_id))),
        "two resume points",
    )
    handle = scheduler.running[job_id].handle
    os.kill(scheduler.executor.worker_pid(handle), signal.SIGKILL)  # nothing is saved
    with scheduler.db.session() as s:
        killed_at = repo.load_job(s, job_id).completed_steps

    done = run_until(scheduler, job_id, lambda j: j.state in TERMINAL_STATES, "the job to end")
    messages = events(scheduler, job_id)
    assert done.state == JobState.SUCCEEDED, diagnosis(scheduler, job_id)
    assert done.attempt_count == 2, messages  # a crash counts as an attempt
    assert done.runner_handle != handle  # a new actor ran the second attempt
    [resumed] = [m for m in messages if m.startswith("resuming from")]
    step = int(re.search(r"\(step (\d+)\)", resumed).group(1))
    assert killed_at - RESUME_EVERY <= step <= killed_at, (killed_at, messages)


def losses(scheduler: Scheduler, job_id: str) -> dict[int, float]:
    with scheduler.db.session() as s:
        return {row["step"]: row["loss"] for row in repo.metric_series(s, job_id)["steps"]}


def rank_pids(log: Path) -> list[int]:
    """The Ray workers the runner started the job's ranks in, as its log says (none yet)."""
    text = log.read_text() if log.exists() else ""
    found = re.search(r"ranks in Ray workers \[([\d, ]+)\]", text)
    return [int(pid) for pid in found.group(1).split(",")] if found else []


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_a_two_rank_job_runs_its_ranks_as_ray_actors_on_the_single_process_curve(
    scheduler, sentiment_files, tmp_path
) -> None:
    # Both CPUs of the cluster go to the ranks: the runner itself must ask for none.
    train = tmp_path / "train.jsonl"
    train.write_text("".join(sentiment_files["train"].read_text().splitlines(True)[:128]))
    scheduler.settings.dataset_roots.append(tmp_path)
    hyperparameters = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3}
    two_ranks = create_job(scheduler, train, devices=2, **hyperparameters)

    started = time.monotonic()
    assert scheduler.tick() == [two_ranks]
    handle = scheduler.running[two_ranks].handle
    runner = scheduler.executor.worker_pid(handle)
    log = storage_for(scheduler.settings).job_dir(two_ranks) / "logs" / "runner.log"
    run_until(scheduler, two_ranks, lambda j: rank_pids(log), "the ranks to start")
    pids = rank_pids(log)
    # Each rank is a Ray worker of its own, started by Ray, not a child of the runner's.
    assert len(set(pids)) == 2 and runner not in pids
    for pid in pids:
        assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::RankActor")
        assert parent_of(pid) != runner
    done = run_until(scheduler, two_ranks, lambda j: j.state in TERMINAL_STATES, "the job")
    print(f"2-rank job on Ray: {time.monotonic() - started:.1f} s from claim to end")
    assert done.state == JobState.SUCCEEDED, diagnosis(scheduler, two_ranks)
    wait_until(lambda: not any(running(pid) for pid in pids), "the rank actors to end")
    assert scheduler.executor.ray.available_resources().get("CPU") == 2  # the group is freed

    one = create_job(scheduler, train, **hyperparameters)
    done = run_until(scheduler, one, lambda j: j.state in TERMINAL_STATES, "the single run")
    assert done.state == JobState.SUCCEEDED, diagnosis(scheduler, one)
    single, distributed = losses(scheduler, one), losses(scheduler, two_ranks)
    assert sorted(distributed) == sorted(single) == list(range(1, 17))
    differences = [abs(distributed[step] - single[step]) for step in single]
    print(f"largest loss difference: {max(differences):.2e}")
    assert max(differences) < LOSS_TOLERANCE
    assert single[16] < single[1] - 0.5  # a curve that learns: matching it is no accident


def two_rank_job(scheduler: Scheduler, train: Path, **hyperparameters) -> tuple[str, Path]:
    """A 2-rank job, started; its id and its runner's log."""
    job_id = create_job(scheduler, train, devices=2, epochs=3, **hyperparameters)
    assert scheduler.tick() == [job_id]
    return job_id, storage_for(scheduler.settings).job_dir(job_id) / "logs" / "runner.log"


def all_cpus_free(scheduler: Scheduler) -> bool:
    return scheduler.executor.ray.available_resources().get("CPU") == 2


@pytest.mark.slow
def test_a_rank_that_fails_fails_the_job_with_its_own_error(scheduler, sentiment_files) -> None:
    job_id, log = two_rank_job(scheduler, sentiment_files["train"], batch_size=7)
    done = run_until(scheduler, job_id, lambda j: j.state in TERMINAL_STATES, "the job to end")
    assert done.state == JobState.FAILED, diagnosis(scheduler, job_id)
    assert done.error["code"] == "invalid_request"
    assert "batch_size 7 does not split evenly over 2 devices" in done.error["message"]
    assert all(not running(pid) for pid in rank_pids(log)) and rank_pids(log)
    wait_until(lambda: all_cpus_free(scheduler), "the ranks' placement group to be removed")


@pytest.mark.slow
def test_a_killed_runner_takes_its_rank_actors_and_their_placement_with_it(
    scheduler, sentiment_files
) -> None:
    job_id, log = two_rank_job(scheduler, sentiment_files["train"], batch_size=4)
    run_until(scheduler, job_id, lambda j: rank_pids(log), "the ranks to start")
    handle = scheduler.running[job_id].handle
    scheduler.executor.stop(handle)
    pids = rank_pids(log)
    wait_until(lambda: not any(running(pid) for pid in pids), "the rank actors to end")
    wait_until(lambda: all_cpus_free(scheduler), "the ranks' placement group to be removed")
    scheduler.running.pop(job_id)
    with scheduler.db.session() as s:
        [recovered] = repo.requeue_orphans(s, scheduler.is_alive)
        assert (recovered.id, recovered.state) == (job_id, JobState.QUEUED)
        repo.request_cancel(s, PROJECT, job_id)
