"""Rows hold URIs from now on, and rows written before (plain paths) still read."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from tuneforge.engine.observer import CheckpointInfo
from tuneforge.jobs.datasets import resolve_dataset
from tuneforge.jobs.store_observer import StoreObserver
from tuneforge.service import Service
from tuneforge.storage import StorageError, file_uri, storage_for
from tuneforge.store import repo
from tuneforge.store.db import open_database
from tuneforge.store.states import JobState
from tuneforge.store.types import utcnow

LINE = b'{"prompt": "a", "completion": "b"}\n'
TINY = "tuneforge/tiny-chat"


@pytest.fixture
def service(settings) -> Service:
    service = Service(open_database(settings.resolved_database_url), settings)
    yield service
    service.db.dispose()


def old_file_row(service: Service, path: Path) -> str:
    """A File row as tuneforge wrote it before the storage seam: a plain absolute path."""
    with service.db.session() as s:
        repo.ensure_project(s, "default")
        row = repo.create_file(
            s,
            "default",
            filename="old.jsonl",
            bytes=path.stat().st_size,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            purpose="fine-tune",
            path=str(path),
            status="processed",
        )
        return row.id


def succeeded_job(service: Service, checkpoint_path: str) -> str:
    with service.db.session() as s:
        repo.ensure_project(s, "default")
        job = repo.create_job(s, "default", base_model=TINY, training_file="file-unused")
        job.state, job.ended_at = JobState.SUCCEEDED, utcnow()
        s.flush()
        repo.add_checkpoint(s, job.id, epoch=1, step=10, path=checkpoint_path, is_default=True)
        repo.create_tuned_model(s, job.id)
        return job.id


def test_an_upload_row_holds_the_uri_of_its_file(service):
    row = service.files.upload("default", "t.jsonl", io.BytesIO(LINE * 12), "fine-tune")
    storage = storage_for(service.settings)
    assert row.path == storage.upload_uri(row.id)
    assert row.path.startswith("file:///")
    assert service.files.local_path(row).read_bytes() == LINE * 12
    with service.db.session() as s:
        assert resolve_dataset(s, service.settings, "default", row.id, "training_file") == (
            storage.local_path(row.path)
        )


def test_an_old_upload_row_still_reads_resolves_and_deletes(service):
    storage = storage_for(service.settings)
    storage.files_dir.mkdir(parents=True)
    path = storage.files_dir / "file-0123456789abcdef01234567.jsonl"
    path.write_bytes(LINE * 12)
    file_id = old_file_row(service, path)

    assert service.files.local_path(service.files.get("default", file_id)) == path
    with service.db.session() as s:
        assert resolve_dataset(s, service.settings, "default", file_id, "training_file") == path
    service.files.delete("default", file_id)
    assert not path.exists()


def test_an_old_result_row_is_kept_on_delete(service):
    metrics = storage_for(service.settings).job_dir("tj-old") / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    metrics.write_bytes(b"step,loss\n1,0.5\n")
    file_id = old_file_row(service, metrics)
    service.files.delete("default", file_id)
    assert metrics.is_file()


@pytest.mark.parametrize("spell", [str, file_uri], ids=["plain-path-of-an-old-row", "file-uri"])
def test_a_checkpoint_row_loads_from_its_local_path(service, spell):
    folder = storage_for(service.settings).job_dir("tj-x") / "epoch-1"
    folder.mkdir(parents=True)
    job_id = succeeded_job(service, spell(folder))
    target = service.models.target("default", job_id)
    assert target.adapter_path == folder


def test_the_observer_records_a_checkpoint_by_uri(service):
    storage = storage_for(service.settings)
    with service.db.session() as s:
        repo.ensure_project(s, "default")
        job_id = repo.create_job(s, "default", base_model=TINY, training_file="f").id
    folder = storage.job_dir(job_id) / "epoch-1"
    folder.mkdir(parents=True)
    observer = StoreObserver(service.db, job_id, None, storage)
    observer.on_checkpoint(CheckpointInfo(epoch=1, step=10, path=folder, metrics={}))
    with service.db.session() as s:
        [checkpoint] = repo.list_checkpoints(s, job_id)
        assert checkpoint.path == file_uri(folder)


def test_the_observer_refuses_a_checkpoint_outside_the_data_dir(service, tmp_path):
    with service.db.session() as s:
        repo.ensure_project(s, "default")
        job_id = repo.create_job(s, "default", base_model=TINY, training_file="f").id
    observer = StoreObserver(service.db, job_id, None, storage_for(service.settings))
    outside = CheckpointInfo(epoch=1, step=10, path=tmp_path / "elsewhere", metrics={})
    with pytest.raises(StorageError):
        observer.on_checkpoint(outside)
    with service.db.session() as s:
        assert list(repo.list_checkpoints(s, job_id)) == []


def test_a_result_file_row_holds_the_uri_of_the_jobs_metrics(service):
    storage = storage_for(service.settings)
    job_id = succeeded_job(service, file_uri(storage.job_dir("tj-x")))
    metrics = storage.job_dir(job_id) / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    metrics.write_bytes(b"step,loss\n1,0.5\n")
    row = service.jobs.result_file("default", job_id)
    assert row.path == storage.job_uri(job_id, "metrics.csv")
    assert service.files.local_path(row).read_bytes() == b"step,loss\n1,0.5\n"
