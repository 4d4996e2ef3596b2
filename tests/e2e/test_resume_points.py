"""Resume points within an epoch, on a real server: a runner killed with -9 mid-epoch loses only
the steps since its last resume point, and a cancelled job keeps that work as a checkpoint that
answers chat requests."""

from __future__ import annotations

import os
import re
import signal

import pytest
from openai import OpenAI

from tests.e2e.test_crash_recovery import VertexApi, wait_for
from tests.servers import LiveServer
from tuneforge.jobs.subprocess_executor import SubprocessHandle
from tuneforge.store import repo
from tuneforge.store.db import Database

pytestmark = pytest.mark.slow

EVERY = 10  # steps between resume points
STEPS_PER_EPOCH = 100  # 400 examples in batches of 4


@pytest.fixture
def server(settings, tmp_path):
    server = LiveServer(
        settings.model_copy(update={"resume_point_steps": EVERY}), tmp_path / "server.log"
    )
    server.start()
    yield server
    server.stop()


def saved_resume_points(events: list[str]) -> list[int]:
    return [int(m.rsplit(" ", 1)[1]) for m in events if m.startswith("saved a resume point")]


def runner_pid(server: LiveServer, job_id: str) -> int:
    db = Database(server.settings.resolved_database_url)
    try:
        with db.session() as s:
            handle = repo.load_job(s, job_id).runner_handle
    finally:
        db.dispose()
    return SubprocessHandle.parse(handle).runner_pid


def test_a_runner_killed_mid_epoch_resumes_from_its_last_resume_point(server, sentiment_files):
    api = VertexApi(server)
    created = api.call(
        "POST",
        f"{api.parent}/tuningJobs",
        json={
            "baseModel": "tuneforge/tiny-chat",
            "supervisedTuningSpec": {
                "trainingDatasetUri": server.upload(sentiment_files["train"])["id"],
                "hyperParameters": {"epochCount": 2, "batchSize": 4},
            },
        },
    )
    name, job_id = created["name"], created["name"].rsplit("/", 1)[-1]
    wait_for(
        lambda: any(s >= 2 * EVERY for s in saved_resume_points(api.events(name))),
        "two resume points in the first epoch",
        lambda: api.diagnosis(name),
    )
    os.kill(runner_pid(server, job_id), signal.SIGKILL)  # no handler runs: nothing is saved
    killed_at = api.progress(name)["completedStepCount"]
    assert killed_at < STEPS_PER_EPOCH, "the kill came too late to land mid-epoch"

    done = api.wait_until_done(name)
    events = api.events(name)
    assert done["state"] == "JOB_STATE_SUCCEEDED", (done.get("error"), events)
    [resumed] = [m for m in events if m.startswith("resuming from")]
    step = int(re.search(r"\(step (\d+)\)", resumed).group(1))
    assert resumed.startswith("resuming from step-"), resumed  # a resume point, not an epoch
    assert killed_at - EVERY <= step <= killed_at, (killed_at, events)
    assert [c["epoch"] for c in done["tunedModel"]["checkpoints"]] == [1, 2]


def test_a_cancelled_job_keeps_its_last_resume_point_as_a_checkpoint(server, sentiment_files):
    client = OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)
    with sentiment_files["train"].open("rb") as handle:
        train = client.files.create(file=handle, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tuneforge/tiny-chat",
        training_file=train.id,
        hyperparameters={"n_epochs": 2, "batch_size": 4},
    )

    def events() -> list[str]:
        return [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data]

    wait_for(lambda: saved_resume_points(events()), "a resume point")
    client.fine_tuning.jobs.cancel(job.id)
    # The job reads "cancelled" from the request on; its runner stops at its next step.
    wait_for(lambda: "tuning job cancelled" in events(), "the runner to stop")
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"

    last_point = max(saved_resume_points(events()))
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    kept = [c for c in checkpoints if c.step_number == last_point]
    assert len(kept) == 1, (last_point, [c.step_number for c in checkpoints])
    answer = client.chat.completions.create(
        model=kept[0].fine_tuned_model_checkpoint,
        messages=[{"role": "user", "content": "review: great fun ->"}],
        max_tokens=3,
        temperature=0,
    )
    assert answer.choices[0].message.role == "assistant"
    assert any(f"the work up to step {last_point}" in m for m in events())
