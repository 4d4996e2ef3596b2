"""Issue 14's proof, the cluster topology on one machine: ``tuneforge serve`` with PostgreSQL
holding the queue and the state, its jobs placed on a local Ray, and every file in an S3 server.
Two jobs, one of them on 2 processes, both succeed and their tuned models answer; the Ray worker
running the other is killed with SIGKILL mid-training, and the job resumes from its last resume
point in the store. No file of either job is written to the server's data dir (only caches)."""

from __future__ import annotations

import os
import re
import signal

import httpx
import pytest

from tests.e2e.test_crash_recovery import wait_for
from tests.servers import LiveServer
from tuneforge.data.samples import write_task
from tuneforge.store.testing import PostgresUnavailable, empty_database_url

pytestmark = pytest.mark.slow

TINY = "tuneforge/tiny-chat"
RESUME_EVERY = 3  # steps


@pytest.fixture
def postgres_url(tmp_path):
    try:
        with empty_database_url("postgres", tmp_path) as url:
            yield url
    except PostgresUnavailable as err:
        if err.required:
            pytest.fail(str(err), pytrace=False)
        pytest.skip(str(err))


def worker_pid(runner_handle: str) -> int:
    """The pid of the Ray worker process whose actor runs a job (its handle names the cluster
    and the actor), asked of the cluster as any Ray client would."""
    import ray

    from tuneforge.jobs.ray_executor import NAMESPACE, RayHandle

    handle = RayHandle.parse(runner_handle)
    ray.init(address=handle.cluster, namespace=NAMESPACE, log_to_driver=False)
    try:
        return ray.get(ray.get_actor(handle.actor).pid.remote())
    finally:
        ray.shutdown()


def test_a_cluster_of_postgres_ray_and_s3_runs_two_jobs_through_a_killed_worker(
    s3_settings, postgres_url, tmp_path, monkeypatch
):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    settings = s3_settings.model_copy(
        update={"database_url": postgres_url, "executor": "ray", "resume_point_steps": RESUME_EVERY}
    )
    task = write_task(tmp_path / "task", "sentiment", sizes=(48, 8, 8))
    server = LiveServer(settings, tmp_path / "server.log").start()
    log_tail = lambda: server.log_path.read_text()[-4000:]  # noqa: E731
    headers = {"Authorization": f"Bearer {server.key}"}
    jobs_url = f"{server.url}/v1/fine_tuning/jobs"

    def job(job_id: str) -> dict:
        return httpx.get(f"{jobs_url}/{job_id}", headers=headers, timeout=30).json()

    def events(job_id: str) -> list[str]:
        page = httpx.get(f"{jobs_url}/{job_id}/events", params={"limit": 1000},
                         headers=headers, timeout=30).json()  # fmt: skip
        return [e["message"] for e in page["data"]]

    def finished(job_id: str):
        found = job(job_id)
        return found["status"] in ("succeeded", "failed", "cancelled") and found

    try:
        file_id = server.upload(task["train"])["id"]
        created = [
            httpx.post(jobs_url, headers=headers, timeout=60, json={
                "model": TINY, "training_file": file_id, "hyperparameters": hyperparameters,
                **extra}).json()["id"]
            for hyperparameters, extra in (
                ({"n_epochs": 1, "batch_size": 4}, {"devices": 2}),
                ({"n_epochs": 2, "batch_size": 2}, {}),
            )
        ]  # fmt: skip
        two_ranks, killed = created

        # Kill the Ray worker running the single-process job once it has two resume points.
        def saved_twice():
            saved = [m for m in events(killed) if m.startswith("saved a resume point")]
            return len(saved) >= 2

        wait_for(saved_twice, "two resume points", log_tail)
        from tuneforge.store.db import open_database
        from tuneforge.store.models import TuningJob

        db = open_database(postgres_url)
        try:
            with db.session() as s:
                runner_handle = s.get(TuningJob, killed).runner_handle
        finally:
            db.dispose()
        os.kill(worker_pid(runner_handle), signal.SIGKILL)

        results = {j: wait_for(lambda j=j: finished(j), f"job {j}", log_tail) for j in created}
        for job_id, found in results.items():
            assert found["status"] == "succeeded", (job_id, found["error"], log_tail())
            chat = {"model": found["fine_tuned_model"], "max_tokens": 4,
                    "messages": [{"role": "user", "content": "review: great ->"}]}  # fmt: skip
            answer = httpx.post(f"{server.url}/v1/chat/completions", json=chat, headers=headers,
                                timeout=120)  # fmt: skip
            assert answer.status_code == 200, answer.text
        assert results[two_ranks]["devices"] == 2
        assert "training on 2 processes under torch.distributed (DDP)" in events(two_ranks)
        resumed = [m for m in events(killed) if m.startswith("resuming from")]
        assert resumed and re.search(r"step-\d+", resumed[0]), events(killed)
    finally:
        server.stop()

    kept = [
        p.relative_to(settings.data_dir).as_posix()
        for p in settings.data_dir.rglob("*")
        if p.is_file()
    ]
    assert [f for f in kept if not f.startswith(("cache/", "models/"))] == ["api_key"], kept
    # The runners' folders were freed when their runs ended: only their logs remain (the
    # runner's, and the 2-rank job's rank actors').
    job_files = [f for f in kept if f.startswith("cache/jobs/")]
    assert all(re.fullmatch(r"cache/jobs/[^/]+/logs/.+\.log", f) for f in job_files), kept
    assert any(f.endswith("/logs/ranks/rank-1.log") for f in job_files), kept
