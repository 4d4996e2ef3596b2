"""Pausing and resuming a real job, and running jobs on a separate worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.polling import wait_for_job
from tests.servers import LiveServer
from tuneforge.config import settings_env

pytestmark = pytest.mark.slow
JOBS = "/v1/projects/default/locations/local/tuningJobs"


def client_for(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
    )


def start_job(server: LiveServer, client: httpx.Client, train_file, epochs: int) -> str:
    file_id = server.upload(train_file)["id"]
    body = {
        "baseModel": "tuneforge/tiny-chat",
        "supervisedTuningSpec": {
            "trainingDatasetUri": file_id,
            "hyperParameters": {"epochCount": epochs},
        },
    }
    response = client.post(JOBS, json=body)
    assert response.status_code == 200, response.text
    return response.json()["name"].rsplit("/", 1)[-1]


def wait_for(client: httpx.Client, job_id: str, condition, timeout_s: float = 240) -> dict:
    return wait_for_job(client, f"{JOBS}/{job_id}", condition, timeout_s)


def events_of(client: httpx.Client, job_id: str) -> list[str]:
    page = client.get(f"{JOBS}/{job_id}/events", params={"pageSize": 1000}).json()
    return [event["message"] for event in page["events"]]


def steps_done(job: dict) -> int:
    return int((job.get("tuningJobMetadata") or {}).get("completedStepCount") or 0)


def test_pause_keeps_the_position_and_resume_finishes_the_job(live_server, sentiment_files):
    client = client_for(live_server)
    job_id = start_job(live_server, client, sentiment_files["train"], epochs=4)
    wait_for(client, job_id, lambda job: steps_done(job) >= 60)  # into epoch 2
    assert client.post(f"{JOBS}/{job_id}:pause").status_code == 200
    paused = wait_for(client, job_id, lambda job: job["state"] == "JOB_STATE_PAUSED")
    paused_at = steps_done(paused)
    assert any(f"resume point at step {paused_at}" in e for e in events_of(client, job_id))

    assert client.post(f"{JOBS}/{job_id}:resume").status_code == 200
    done = wait_for(
        client, job_id, lambda job: job["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED")
    )
    assert done["state"] == "JOB_STATE_SUCCEEDED", done.get("error")
    assert any(f"resuming from step-{paused_at}" in e for e in events_of(client, job_id))
    epochs = sorted(c["epoch"] for c in done["tunedModel"]["checkpoints"])
    assert epochs == [1, 2, 3, 4]


def test_a_worker_runs_the_jobs_of_a_server_without_a_scheduler(
    settings, tmp_path, sentiment_files
):
    server = LiveServer(settings, tmp_path / "server.log", scheduler=False).start()
    worker = None
    try:
        client = client_for(server)
        job_id = start_job(server, client, sentiment_files["train"], epochs=1)
        time.sleep(1.5)
        assert client.get(f"{JOBS}/{job_id}").json()["state"] == "JOB_STATE_QUEUED"
        env = {**os.environ, **settings_env(settings), "HF_HUB_OFFLINE": "1"}
        with (tmp_path / "worker.log").open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tuneforge.cli.main", "worker", "--interval", "0.2"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        done = wait_for(
            client, job_id, lambda job: job["state"] in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED")
        )
        assert done["state"] == "JOB_STATE_SUCCEEDED", done.get("error")
    finally:
        if worker and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
        server.stop()
