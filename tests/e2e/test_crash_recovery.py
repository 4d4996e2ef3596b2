"""A crash in the middle of training: the server's whole process group is killed (-9) after the
job's first checkpoint; the server starts again on the same data, and the job resumes from its
checkpoint and finishes SUCCEEDED with every epoch's checkpoint."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = pytest.mark.slow

EPOCHS = 5
JOB_TIMEOUT_S = 300.0
POLL_S = 0.2
UNFINISHED_STATES = {"JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING"}


class VertexApi:
    def __init__(self, server) -> None:
        self.server = server
        self.parent = f"{server.url}/v1/projects/crash-test/locations/local"

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = httpx.request(
            method,
            path if path.startswith("http") else f"{self.server.url}/v1/{path}",
            headers={"Authorization": f"Bearer {self.server.key}"},
            timeout=60,
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def events(self, job_name: str) -> list[str]:
        return [e["message"] for e in self.call("GET", f"{job_name}/events")["events"]]


def wait_for(condition, what: str, timeout_s: float = JOB_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_killed_mid_training_resumes_and_succeeds(live_server, sentiment_files):
    api = VertexApi(live_server)
    upload = live_server.upload(sentiment_files["train"])
    job = api.call(
        "POST",
        f"{api.parent}/tuningJobs",
        json={
            "baseModel": "tuneforge/tiny-chat",
            "supervisedTuningSpec": {
                "trainingDatasetUri": upload["id"],
                "hyperParameters": {"epochCount": EPOCHS},
            },
        },
    )
    name = job["name"]

    wait_for(
        lambda: any(m.startswith("checkpoint saved: epoch 1") for m in api.events(name)),
        "the first checkpoint",
    )
    assert api.call("GET", name)["state"] == "JOB_STATE_RUNNING"
    live_server.kill()

    live_server.start()
    done = wait_for(
        lambda: (j := api.call("GET", name))["state"] not in UNFINISHED_STATES and j,
        "the job to finish after the restart",
    )
    events = api.events(name)
    assert done["state"] == "JOB_STATE_SUCCEEDED", (done.get("error"), events)
    assert "tuning job started (attempt 2)" in events
    assert any("resuming from" in message for message in events), events
    assert any(message.startswith("runner lost") for message in events), events
    checkpoints = done["tunedModel"]["checkpoints"]
    assert [c["epoch"] for c in checkpoints] == list(range(1, EPOCHS + 1))
    assert done["tuningJobMetadata"]["completedEpochCount"] == EPOCHS

    # The tuned model answers from the resumed run's checkpoint.
    answer = api.call(
        "POST",
        f"{done['tunedModel']['endpoint']}:generateContent",
        json={
            "contents": [{"role": "user", "parts": [{"text": "review: great fun ->"}]}],
            "generationConfig": {"temperature": 0, "maxOutputTokens": 4},
        },
    )
    assert answer["candidates"][0]["content"]["role"] == "model"
