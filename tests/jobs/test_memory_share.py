"""A model in training counts against the inference's memory budget: each runner writes its
memory plan, its scheduler sums the plans of its running jobs per device and tells its
process's inference, whose cache of loaded models shrinks by that much."""

from __future__ import annotations

from tests.jobs.test_executor_protocol import MemoryExecutor, queue_jobs
from tuneforge.config import Settings
from tuneforge.jobs.memory_share import (
    device_key,
    plan_file,
    planned_by_device,
    read_plan,
    write_plan,
)
from tuneforge.jobs.scheduler import Scheduler
from tuneforge.service.generation import GenerationService
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.states import JobState


def test_the_scheduler_tells_the_inference_what_its_running_jobs_planned(
    db: Database, tmp_path
) -> None:
    told: list[dict[str, int]] = []
    settings = Settings(data_dir=tmp_path, slots=3)
    scheduler = Scheduler(
        db, settings, executor=MemoryExecutor("a"), worker_id="a", training_memory=told.append
    )
    first, second, _loading = queue_jobs(db, 3)
    scheduler.tick()
    assert told == []  # every runner still loading: nothing planned yet

    write_plan(plan_file(settings, first), "cpu", 3 << 30)
    write_plan(plan_file(settings, second), "cpu", 2 << 30)
    scheduler.tick()
    assert told == [{"cpu": 5 << 30}]
    scheduler.tick()
    assert len(told) == 1  # unchanged: not told again

    for handle in list(scheduler.executor.alive):
        if first in handle:
            scheduler.executor.alive[handle] = False  # the first job ended
    with db.session() as s:
        repo.load_job(s, first).state = JobState.SUCCEEDED
    scheduler.tick()
    assert told[-1] == {"cpu": 2 << 30}  # its plan no longer counts, though its file stays


def test_a_gpu_runners_plan_counts_on_its_slots_gpu(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    write_plan(plan_file(settings, "on-gpu-1"), "cuda", 7 << 30)  # it sees its GPU as "cuda"
    write_plan(plan_file(settings, "on-cpu"), "cpu", 1 << 30)
    planned = planned_by_device(settings, [("on-gpu-1", (1,)), ("on-cpu", ()), ("new", (0,))])
    assert planned == {"cuda:1": 7 << 30, "cpu": 1 << 30}
    assert device_key("cuda", ()) == "cuda:0"


def test_a_half_written_or_missing_plan_reads_as_none(tmp_path) -> None:
    assert read_plan(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text('{"device": "cpu", "total_')
    assert read_plan(tmp_path / "broken.json") is None
    write_plan(tmp_path / "plan.json", "cpu", 123)
    assert read_plan(tmp_path / "plan.json") == ("cpu", 123)


def test_the_server_counts_training_against_a_backend_it_makes_later(tmp_path) -> None:
    generation = GenerationService(Settings(data_dir=tmp_path), models=None)
    generation.reserve_for_training({"cpu": 3 << 30, "cuda:0": 9 << 30})
    cache = generation.backend.inner._cache  # made now, on the CPU here
    assert cache.reserved_bytes == 3 << 30
    generation.reserve_for_training({})
    assert cache.reserved_bytes == 0
