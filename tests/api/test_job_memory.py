"""A job's memory plan as a user sees it: in the job's events, and a job that cannot fit failed
before it trains, with the numbers and what to change."""

from __future__ import annotations

import json

from openai.types.fine_tuning import FineTuningJob

from tests.api.test_openai_jobs import JOBS, TINY, create, upload
from tuneforge.data.samples import write_task
from tuneforge.jobs.memory_share import plan_file
from tuneforge.jobs.runner import run_job
from tuneforge.store import repo


def run_next_job(api, **settings) -> None:
    """As a worker would, under these settings."""
    db = api.service.db
    with db.session() as s:
        job = repo.claim_next_job(s, "test-worker", capacity=1)
    run_job(db, api.service.settings.model_copy(update=settings), job.id, "test-worker")


def events(api, job_id: str) -> list[dict]:
    url = f"{JOBS}/{job_id}/events"
    return api.client.get(url, params={"limit": 100}, headers=api.headers()).json()["data"]


def test_a_job_that_cannot_fit_fails_before_training_saying_what_to_change(api, tmp_path):
    files = write_task(tmp_path / "task", "sentiment", sizes=(16, 4, 4))
    job_id = create(
        api,
        model=TINY,
        training_file=upload(api, files["train"]),
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 8}}},
    )["id"]

    run_next_job(api, training_memory_bytes=256 << 20)

    job = FineTuningJob.model_validate(
        api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()
    )
    assert job.status == "failed"
    assert job.error.code == "insufficient_memory"
    message = job.error.message
    assert message.startswith("not enough memory to train: the smallest plan needs")
    assert "230 MiB is available to it (256 MiB free" in message
    assert "runtime 704 MiB" in message
    assert "a smaller batch_size (now 8)" in message
    assert job.trained_tokens is None
    assert not plan_file(api.service.settings, job_id).exists()  # nothing for the scheduler
    messages = [e["message"] for e in events(api, job_id)]
    assert any(m.startswith("memory plan on cpu:") for m in messages)
    assert not any(m.startswith("Step ") for m in messages)


def test_a_job_shows_its_plan_and_tells_its_scheduler(api, tmp_path):
    files = write_task(tmp_path / "task", "sentiment", sizes=(16, 4, 4))
    job_id = create(
        api, model=TINY, training_file=upload(api, files["train"]), hyperparameters={"n_epochs": 1}
    )["id"]

    run_next_job(api)

    [event] = [e for e in events(api, job_id) if e["message"].startswith("memory plan")]
    plan = event["data"]["memory_plan"]
    assert plan["fits"] and plan["micro_batch_size"] == plan["batch_size"]
    assert plan["total"] == sum(
        plan[k] for k in ("weights", "gradients", "optimizer", "activations", "logits", "runtime")
    )
    written = json.loads(plan_file(api.service.settings, job_id).read_text())
    assert written == {"device": "cpu", "total_bytes": plan["total"]}
    # and its disk: planned before it starts, then what its folder takes once it has ended
    assert any(e["message"].startswith("disk plan:") for e in events(api, job_id))
    job = api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()
    assert job["status"] == "succeeded" and job["disk_bytes"] > 0
    vertex = api.client.get(
        f"/v1/projects/p/locations/l/tuningJobs/{job_id}", headers=api.headers()
    )
    assert vertex.json()["tuningJobMetadata"]["diskBytes"] == job["disk_bytes"]
