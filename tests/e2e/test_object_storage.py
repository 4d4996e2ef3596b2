"""A server and a worker that share a database and an S3 server, and no disk: the dataset is
uploaded through the API, the worker trains from the store and writes its checkpoints there,
and the server answers chat requests from the tuned model with the adapter fetched into its
cache. No file of the job is written under the server's data dir."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tuneforge.api.app import create_app
from tuneforge.config import Settings
from tuneforge.data.samples import write_task
from tuneforge.jobs.runner import METRICS_CSV_COLUMNS, run_job
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.states import JobState

pytestmark = pytest.mark.slow

TINY = "tuneforge/tiny-chat"


def host_settings(base: Settings, data_dir: Path, database_url: str) -> Settings:
    """``base`` on a host of its own: its own data dir, the shared database."""
    data_dir.mkdir()
    (data_dir / "models").symlink_to(base.data_dir / "models", target_is_directory=True)
    return base.model_copy(update={"data_dir": data_dir, "database_url": database_url})


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_a_worker_and_the_server_share_only_the_database_and_the_store(s3_settings, tmp_path):
    import torch

    torch.set_num_threads(1)  # two shared cores: a tiny model trains faster on one thread
    database_url = f"sqlite:///{tmp_path / 'db-host' / 'tuneforge.db'}"
    (tmp_path / "db-host").mkdir()
    server = host_settings(s3_settings, tmp_path / "server", database_url)
    worker = host_settings(s3_settings, tmp_path / "worker", database_url)
    task = write_task(tmp_path / "task", "sentiment", sizes=(40, 10, 10))

    with TestClient(create_app(server, run_scheduler=False)) as client:
        _, key = client.app.state.service.keys.create("default", "test")
        headers = {"Authorization": f"Bearer {key}"}
        uploaded = client.post(
            "/v1/files",
            headers=headers,
            files={"file": ("train.jsonl", task["train"].read_bytes())},
            data={"purpose": "fine-tune"},
        )
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["status"] == "processed"
        created = client.post(
            "/v1/fine_tuning/jobs",
            headers=headers,
            json={
                "model": TINY,
                "training_file": uploaded.json()["id"],
                "hyperparameters": {"n_epochs": 2, "batch_size": 8},
                "suffix": "s3",
            },
        )
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]

        # The worker, on its own host, claims and runs the job.
        worker_db = Database(worker.resolved_database_url)
        try:
            with worker_db.session() as s:
                assert repo.claim_next_job(s, "worker-2", capacity=1).id == job_id
            started = time.perf_counter()
            run_job(worker_db, worker, job_id, "worker-2")
            trained_s = time.perf_counter() - started
        finally:
            worker_db.dispose()

        job = client.get(f"/v1/fine_tuning/jobs/{job_id}", headers=headers).json()
        assert job["status"] == "succeeded", job["error"]

        # Its saves, metrics and loss curve are in the store; the worker kept only caches.
        store = storage_for(server)
        objects = sorted(m["path"] for m in store._list(f"jobs/{job_id}/"))
        assert f"jobs/{job_id}/metrics.csv" in objects
        assert f"jobs/{job_id}/loss_curve.png" in objects
        saves = {
            parts[3]
            for parts in (o.split("/") for o in objects)
            if parts[2] == "checkpoints" and len(parts) > 4
        }
        assert saves == {"epoch-1", "epoch-2"}
        worker_files = files_under(worker.data_dir)
        assert all(f.startswith("cache/") for f in worker_files), worker_files
        # It read the dataset from the store: a copy of the upload, in its cache.
        assert f"{uploaded.json()['id']}.jsonl" in {Path(f).name for f in worker_files}
        assert files_under(worker.data_dir / "cache" / "jobs") == []  # the run freed its folder

        # The server answers from the tuned model, its adapter fetched into its cache.
        chat = {
            "model": job["fine_tuned_model"],
            "messages": [{"role": "user", "content": "review: great ->"}],
            "max_tokens": 4,
        }
        started = time.perf_counter()
        answer = client.post("/v1/chat/completions", json=chat, headers=headers)
        first_answer_s = time.perf_counter() - started
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == job["fine_tuned_model"]
        cached = files_under(server.data_dir / "cache" / "objects")
        assert any(f.endswith("/epoch-2/adapter_model.safetensors") for f in cached), cached

        # The metrics CSV, read from the store as the job's result file.
        (result_id,) = (
            job["result_files"]
            or client.get(f"/v1/fine_tuning/jobs/{job_id}", headers=headers).json()["result_files"]
        )
        csv = client.get(f"/v1/files/{result_id}/content", headers=headers).text.splitlines()
        assert csv[0] == ",".join(METRICS_CSV_COLUMNS)

    # Nothing of the job, nor the upload, lies under the server's data dir but its caches (and
    # the built-in models, which are no job's).
    kept = [f for f in files_under(server.data_dir) if not f.startswith(("cache/", "models/"))]
    assert kept == [], kept
    assert files_under(server.data_dir / "cache" / "jobs") == []
    timings = {"trained_s": trained_s, "first_answer_s": first_answer_s}
    print(json.dumps({name: round(value, 2) for name, value in timings.items()}))


def test_a_job_paused_on_one_worker_resumes_on_another_from_the_store(s3_settings, tmp_path):
    """Worker A saves a resume point and pauses; worker B, sharing no disk with A, resumes
    from that point as the store holds it, and finishes the job."""
    import torch

    torch.set_num_threads(1)
    database_url = f"sqlite:///{tmp_path / 'db-host' / 'tuneforge.db'}"
    (tmp_path / "db-host").mkdir()
    server = host_settings(s3_settings, tmp_path / "server", database_url)
    workers = [host_settings(s3_settings, tmp_path / name, database_url) for name in "ab"]
    task = write_task(tmp_path / "task", "sentiment", sizes=(40, 10, 10))

    with TestClient(create_app(server, run_scheduler=False)) as client:
        service = client.app.state.service
        with task["train"].open("rb") as stream:
            file_id = service.files.upload("default", "train.jsonl", stream, "fine-tune").id
        _, key = service.keys.create("default", "test")
        headers = {"Authorization": f"Bearer {key}"}
        created = client.post(
            "/v1/fine_tuning/jobs",
            headers=headers,
            json={
                "model": TINY,
                "training_file": file_id,
                "hyperparameters": {"n_epochs": 1, "batch_size": 8},
            },
        )
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]

        for worker, name in zip(workers, ("worker-a", "worker-b"), strict=True):
            db = Database(worker.resolved_database_url)
            try:
                with db.session() as s:
                    assert repo.claim_next_job(s, name, capacity=1).id == job_id
                if name == "worker-a":  # asked before its first step: it pauses at step 1
                    with db.session() as s:
                        repo.request_pause(s, "default", job_id)
                run_job(db, worker, job_id, name)
                if name == "worker-a":
                    with db.session() as s:
                        assert repo.load_job(s, job_id).state == JobState.PAUSED
                        repo.resume_job(s, "default", job_id)
            finally:
                db.dispose()
            assert files_under(worker.data_dir / "cache" / "jobs") == []

        job = client.get(f"/v1/fine_tuning/jobs/{job_id}", headers=headers).json()
        assert job["status"] == "succeeded", job["error"]
        events = client.get(
            f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}, headers=headers
        ).json()["data"]
        messages = [e["message"] for e in events]
        assert any(m.startswith("resuming from step-1 (step 1)") for m in messages), messages


def test_a_real_server_runs_its_jobs_through_the_store(s3_settings, tmp_path):
    """``tuneforge serve`` with its scheduler: the runner, a subprocess given the server's
    settings, trains from the store and publishes there; the server keeps only caches, the
    API key, and the runner's log (in the cache, beside the folder the run freed)."""
    from tests.e2e.test_crash_recovery import wait_for
    from tests.servers import LiveServer

    (tmp_path / "db-host").mkdir()
    settings = s3_settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'db-host' / 'tuneforge.db'}"}
    )
    task = write_task(tmp_path / "task", "sentiment", sizes=(40, 10, 10))
    server = LiveServer(settings, tmp_path / "server.log").start()
    try:
        headers = {"Authorization": f"Bearer {server.key}"}
        file_id = server.upload(task["train"])["id"]
        body = {"model": TINY, "training_file": file_id, "hyperparameters": {"n_epochs": 1}}
        job_id = httpx.post(
            f"{server.url}/v1/fine_tuning/jobs", json=body, headers=headers, timeout=60
        ).json()["id"]

        def finished():
            job = httpx.get(f"{server.url}/v1/fine_tuning/jobs/{job_id}", headers=headers).json()
            return job["status"] in ("succeeded", "failed", "cancelled") and job

        job = wait_for(finished, "the job to finish", lambda: server.log_path.read_text()[-3000:])
        assert job["status"] == "succeeded", job["error"]
        chat = {
            "model": job["fine_tuned_model"],
            "messages": [{"role": "user", "content": "review: great ->"}],
            "max_tokens": 4,
        }
        answer = httpx.post(
            f"{server.url}/v1/chat/completions", json=chat, headers=headers, timeout=120
        )
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()

    kept = [f for f in files_under(settings.data_dir) if not f.startswith(("cache/", "models/"))]
    assert kept == ["api_key"], kept
    assert files_under(settings.data_dir / "cache" / "jobs") == [f"{job_id}/logs/runner.log"]


def test_a_vertex_job_trains_on_a_dataset_named_by_s3_uri(s3_settings, s3_server, tmp_path):
    """A team keeps its datasets in a bucket beside tuneforge's own: a job names one by URI and
    the runner reads it with the store's endpoint and credentials. The store's own objects
    (another project's upload) cannot be named that way."""
    import torch

    torch.set_num_threads(1)  # two shared cores: a tiny model trains faster on one thread
    task = write_task(tmp_path / "task", "sentiment", sizes=(40, 10, 10))
    bucket = s3_server.new_bucket()
    s3_server.put(bucket, "sentiment/train.jsonl", task["train"].read_bytes())
    parent = "projects/my-project/locations/us-central1"

    with TestClient(create_app(s3_settings, run_scheduler=False)) as client:
        _, key = client.app.state.service.keys.create("default", "test")
        _, other_key = client.app.state.service.keys.create("other", "test")
        headers = {"Authorization": f"Bearer {key}"}
        theirs = client.post(
            "/v1/files",
            headers={"Authorization": f"Bearer {other_key}"},
            files={"file": ("train.jsonl", task["train"].read_bytes())},
            data={"purpose": "fine-tune"},
        ).json()["id"]

        def tune(uri: str):
            body = {
                "baseModel": TINY,
                "supervisedTuningSpec": {
                    "trainingDatasetUri": uri,
                    "hyperParameters": {"epochCount": 1},
                },
            }
            return client.post(f"/v1/{parent}/tuningJobs", json=body, headers=headers)

        their_object = f"{s3_settings.storage_url}/files/{theirs}.jsonl"
        refused = tune(their_object)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert "is inside tuneforge's own storage" in refused.json()["error"]["message"]

        created = tune(f"s3://{bucket}/sentiment/train.jsonl")
        assert created.status_code == 200, created.text
        job_id = created.json()["name"].rsplit("/", 1)[-1]
        db = client.app.state.service.db
        with db.session() as s:
            assert repo.claim_next_job(s, "worker-1", capacity=1).id == job_id
        run_job(db, s3_settings, job_id, "worker-1")

        job = client.get(f"/v1/{parent}/tuningJobs/{job_id}", headers=headers).json()
        assert job["state"] == "JOB_STATE_SUCCEEDED", job.get("error")
        stats = job["tuningDataStats"]["supervisedTuningDataStats"]
        assert int(stats["tuningDatasetExampleCount"]) == 40

        missing = tune(f"s3://{bucket}/sentiment/missing.jsonl")  # checked when the job runs
        job_id = missing.json()["name"].rsplit("/", 1)[-1]
        with db.session() as s:
            assert repo.claim_next_job(s, "worker-1", capacity=1).id == job_id
        run_job(db, s3_settings, job_id, "worker-1")
        job = client.get(f"/v1/{parent}/tuningJobs/{job_id}", headers=headers).json()
        assert job["state"] == "JOB_STATE_FAILED"
        assert job["error"]["message"] == (
            f"training_file: there is no object at 's3://{bucket}/sentiment/missing.jsonl'"
        )
