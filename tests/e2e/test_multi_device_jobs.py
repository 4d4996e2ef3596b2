"""Multi-device jobs end to end: a real server runs a job on 2 CPU processes (gloo) through its
scheduler, runner and torch's elastic launcher."""

from __future__ import annotations

import time

import httpx
import psutil
import pytest

from tests.e2e.polling import wait_for_job
from tests.servers import LiveServer

pytestmark = pytest.mark.slow
JOBS = "/v1/fine_tuning/jobs"


def client_for(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
    )


def create(server: LiveServer, client: httpx.Client, train_file, **fields) -> dict:
    body = {
        "model": "tuneforge/tiny-chat",
        "training_file": server.upload(train_file)["id"],
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 8}}},
        **fields,
    }
    response = client.post(JOBS, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(client: httpx.Client, job_id: str, condition, timeout_s: float = 240) -> dict:
    return wait_for_job(client, f"{JOBS}/{job_id}", condition, timeout_s)


def events_of(client: httpx.Client, job_id: str) -> list[dict]:
    return client.get(f"{JOBS}/{job_id}/events", params={"limit": 1000}).json()["data"]


def test_a_two_process_job_trains_reports_once_and_serves(live_server, sentiment_files):
    client = client_for(live_server)
    job = create(live_server, client, sentiment_files["train"], devices=2)
    assert job["devices"] == 2
    done = wait_for(client, job["id"], lambda j: j["status"] in ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert done["devices"] == 2

    # Rank 0 alone reports: one event per step, one checkpoint per epoch.
    messages = [e["message"] for e in events_of(client, job["id"])]
    steps = [m for m in messages if m.startswith("Step ")]
    assert len(steps) == len(set(steps)) == 50 * done["hyperparameters"]["n_epochs"]
    checkpoints = client.get(f"{JOBS}/{job['id']}/checkpoints").json()["data"]
    assert sorted(c["step_number"] for c in checkpoints) == sorted(
        {c["step_number"] for c in checkpoints}
    )

    answer = client.post(
        "/v1/chat/completions",
        json={
            "model": done["fine_tuned_model"],
            "messages": [{"role": "user", "content": "great film"}],
            "max_tokens": 4,
        },
    )
    assert answer.status_code == 200, answer.text


def runner_and_ranks(server: LiveServer) -> list[psutil.Process]:
    """The server's runners and everything they started."""
    return psutil.Process(server.process.pid).children(recursive=True)


def test_cancel_stops_every_rank_and_leaves_no_process(live_server, sentiment_files):
    client = client_for(live_server)
    job = create(live_server, client, sentiment_files["train"], devices=2)
    job_id = job["id"]
    wait_for(
        client,
        job_id,
        lambda j: any(e["message"].startswith("Step 3/") for e in events_of(client, j["id"])),
    )
    started = runner_and_ranks(live_server)
    ranks = [p for p in started if "multiprocessing" in " ".join(p.cmdline())]
    assert len(ranks) >= 2, [p.cmdline() for p in started]

    assert client.post(f"{JOBS}/{job_id}/cancel").status_code == 200
    done = wait_for(client, job_id, lambda j: j["status"] == "cancelled")
    assert done["status"] == "cancelled"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p) for p in started):
        time.sleep(0.2)
    assert [p.cmdline() for p in started if alive(p)] == []


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
