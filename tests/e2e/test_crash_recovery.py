"""Restarts in the middle of training are not the job's fault.

A crash: the server's process group is killed (-9) three times, each after a new checkpoint.
A graceful stop: the server gets SIGTERM. Either way the job's runner saves a resume point and
the job goes back to the queue without the attempt counting (a job gets three attempts, so three
counted restarts would fail it); the server starts again on the same data, and the job resumes
from where it stopped and finishes SUCCEEDED with every epoch's checkpoint."""

from __future__ import annotations

import re
import signal
import time

import httpx
import pytest

from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.states import JobState

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
        """Every event of the job, oldest first, across pages."""
        messages, token = [], None
        while True:
            params = {"pageSize": 1000, **({"pageToken": token} if token else {})}
            page = self.call("GET", f"{job_name}/events", params=params)
            messages += [e["message"] for e in page["events"]]
            if not (token := page.get("nextPageToken")):
                return messages

    def progress(self, job_name: str) -> dict:
        """The job's progress metadata; an AssertionError naming why if the job has ended."""
        job = self.call("GET", job_name)
        if job["state"] not in UNFINISHED_STATES:
            raise AssertionError(f"the job ended {job['state']}: {self.diagnosis(job_name)}")
        return job.get("tuningJobMetadata", {})

    def diagnosis(self, job_name: str) -> str:
        """What a failure report needs: the job's events and the end of its runner's log."""
        job_id = job_name.rsplit("/", 1)[-1]
        runner_log = self.server.settings.data_dir / "jobs" / job_id / "logs" / "runner.log"
        tail = runner_log.read_text(errors="replace")[-3000:] if runner_log.exists() else ""
        return f"events: {self.events(job_name)}\nrunner log (end): {tail}"

    def create_job(self, training_file: str) -> str:
        job = self.call(
            "POST",
            f"{self.parent}/tuningJobs",
            json={
                "baseModel": "tuneforge/tiny-chat",
                "supervisedTuningSpec": {
                    "trainingDatasetUri": training_file,
                    "hyperParameters": {"epochCount": EPOCHS},
                },
            },
        )
        return job["name"]

    def wait_until_done(self, name: str) -> dict:
        return wait_for(
            lambda: (j := self.call("GET", name))["state"] not in UNFINISHED_STATES and j,
            "the job to finish after the restart",
            lambda: self.diagnosis(name),
        )


def wait_for(condition, what: str, diagnosis=lambda: "", timeout_s: float = JOB_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}; {diagnosis()}")


def resumes(events: list[str]) -> list[str]:
    return [m for m in events if m.startswith("resuming from")]


def assert_succeeded_with_every_epoch(api: VertexApi, done: dict, events: list[str]) -> None:
    assert done["state"] == "JOB_STATE_SUCCEEDED", (done.get("error"), events)
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


def test_three_crashes_mid_training_do_not_fail_the_job(live_server, sentiment_files):
    api = VertexApi(live_server)
    name = api.create_job(live_server.upload(sentiment_files["train"])["id"])

    for crash in (1, 2, 3):
        # Each crash comes right after a checkpoint that the server's own runner wrote, once it
        # resumed, so it lands mid-training (a crash while a runner starts is another case).
        wait_for(
            lambda crash=crash: len(resumes(api.events(name))) >= crash - 1,
            f"the run to resume after crash {crash - 1}",
            lambda: api.diagnosis(name),
        )
        saved = api.progress(name).get("completedEpochCount", 0)
        wait_for(
            lambda saved=saved: api.progress(name).get("completedEpochCount", 0) > saved,
            f"a new checkpoint before crash {crash}",
            lambda: api.diagnosis(name),
        )
        live_server.kill()
        live_server.start()

    done = api.wait_until_done(name)
    events = api.events(name)
    assert_succeeded_with_every_epoch(api, done, events)
    # Each crash sent the runner SIGTERM: it saved a resume point and requeued the job itself.
    requeues = [m for m in events if "not counted as an attempt" in m]
    assert len(requeues) == 3, events
    assert all("resume point saved at step" in m for m in requeues), events
    assert "tuning job started (attempt 2)" not in events
    assert len(resumes(events)) == 3, events


def test_sigterm_saves_a_resume_point_and_the_restart_resumes_there(live_server, sentiment_files):
    api = VertexApi(live_server)
    name = api.create_job(live_server.upload(sentiment_files["train"])["id"])
    wait_for(
        lambda: api.progress(name).get("completedStepCount", 0) >= 3,
        "a few steps",
        lambda: api.diagnosis(name),
    )

    started = time.monotonic()
    # uvicorn shuts down gracefully, then re-raises the signal it caught: -SIGTERM.
    assert live_server.terminate() == -signal.SIGTERM
    took = time.monotonic() - started
    assert took < live_server.settings.shutdown_grace_s, f"the server took {took:.1f} s to stop"

    db = Database(live_server.settings.resolved_database_url)
    try:
        with db.session() as s:
            job_id = name.rsplit("/", 1)[-1]
            job = repo.load_job(s, job_id)
            assert (job.state, job.attempt_count, job.worker_id) == (JobState.QUEUED, 0, None)
            messages = [e.message for e in repo.list_events(s, job_id)]
    finally:
        db.dispose()
    assert any(": saving a resume point" in m for m in messages), messages
    [saved] = [m for m in messages if m.startswith("resume point saved at step")]
    step = int(re.search(r"step (\d+)", saved).group(1))

    live_server.start()
    done = api.wait_until_done(name)
    events = api.events(name)
    assert_succeeded_with_every_epoch(api, done, events)
    assert any(m.startswith("resuming from") and f"(step {step})" in m for m in events), events
    assert "tuning job started (attempt 2)" not in events
