"""LocalStorage: the data dir's layout, immutable uploads, and what it refuses."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tuneforge.config import Settings
from tuneforge.storage import (
    LocalStorage,
    Storage,
    StorageError,
    file_uri,
    local_file,
    storage_for,
)


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "data")


def test_settings_give_local_storage_on_the_data_dir(tmp_path):
    storage = storage_for(Settings(data_dir=tmp_path))
    assert isinstance(storage, LocalStorage)
    assert isinstance(storage, Storage)  # every member of the protocol
    assert storage.location == str(tmp_path)


def test_the_layout_of_the_data_dir(storage, tmp_path):
    root = tmp_path / "data"
    assert local_file(storage.upload_uri("file-1")) == root / "files" / "file-1.jsonl"
    assert storage.job_dir("tj-1") == root / "jobs" / "tj-1"
    assert local_file(storage.job_uri("tj-1", "metrics.csv")) == root / "jobs/tj-1/metrics.csv"
    assert storage.models_dir == root / "models"
    assert storage.cache_dir == root / "cache"
    assert storage.local_key_path == root / "api_key"


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", ".hidden", "tj-1/../../x", "a\\b"])
def test_ids_never_name_another_folder(storage, bad):
    with pytest.raises(StorageError):
        storage.upload_uri(bad)
    with pytest.raises(StorageError):
        storage.job_dir(bad)


def test_publish_gives_the_uri_of_what_a_job_wrote(storage):
    checkpoint = storage.job_dir("tj-1") / "epoch-1"
    checkpoint.mkdir(parents=True)
    uri = storage.publish(checkpoint)
    assert uri == file_uri(checkpoint)
    assert storage.local_path(uri) == checkpoint


@pytest.mark.parametrize("escape", ["outside", "data/jobs/../../outside", "data/jobs/link"])
def test_publish_refuses_a_path_outside_the_data_dir(storage, tmp_path, escape):
    (tmp_path / "outside").mkdir()
    (tmp_path / "data" / "jobs").mkdir(parents=True)
    (tmp_path / "data" / "jobs" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(StorageError, match="outside the storage root"):
        storage.publish(tmp_path / escape)


def test_an_upload_is_whole_and_read_only(storage):
    uri = storage.write_upload("file-1", [b"a\n", b"b\n"])
    path = storage.local_path(uri)
    assert storage.read_bytes(uri) == b"a\nb\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list(path.parent.iterdir()) == [path]


def test_a_partial_upload_is_never_visible(storage):
    uri = storage.upload_uri("file-1")
    seen = []

    def chunks():
        yield b"first\n"
        seen.append(storage.exists(uri))
        yield b"second\n"

    storage.write_upload("file-1", chunks())
    assert seen == [False]
    assert storage.exists(uri)


def test_a_failed_upload_leaves_nothing(storage):
    def chunks():
        yield b"first\n"
        raise RuntimeError("too large")

    with pytest.raises(RuntimeError, match="too large"):
        storage.write_upload("file-1", chunks())
    assert list(storage.files_dir.iterdir()) == []


def test_delete_removes_an_upload_and_nothing_else(storage, tmp_path):
    upload = storage.write_upload("file-1", [b"x\n"])
    metrics = storage.job_dir("tj-1") / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    metrics.write_text("step,loss\n")
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text("x\n")

    assert storage.delete_upload(storage.job_uri("tj-1", "metrics.csv")) is False
    assert storage.delete_upload(str(elsewhere)) is False
    sneaky = file_uri(storage.files_dir / ".." / "jobs" / "tj-1" / "metrics.csv")
    assert storage.delete_upload(sneaky) is False
    assert metrics.is_file() and elsewhere.is_file()
    assert storage.delete_upload(upload) is True
    assert not storage.exists(upload)


def test_an_old_rows_plain_path_is_read_and_deleted_as_before(storage):
    storage.files_dir.mkdir(parents=True)
    old = storage.files_dir / "file-old.jsonl"
    old.write_text("x\n")
    assert storage.local_path(str(old)) == old
    assert storage.exists(str(old)) and storage.read_bytes(str(old)) == b"x\n"
    assert storage.delete_upload(str(old)) is True
    assert not old.exists()


def test_an_object_store_uri_is_not_local_storages(storage):
    with pytest.raises(StorageError):
        storage.local_path("s3://bucket/files/file-1.jsonl")


def test_prepare_makes_the_data_dir(storage, tmp_path):
    storage.prepare()
    assert (tmp_path / "data").is_dir()


def test_a_relative_data_dir_stores_absolute_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = LocalStorage(Path("rel"))
    assert local_file(storage.upload_uri("file-1")) == tmp_path / "rel/files/file-1.jsonl"


def test_a_jobs_folder_is_where_its_saves_stay(storage):
    folder = storage.fetch_job("tj-1")
    assert folder == storage.job_dir("tj-1")
    (folder / "checkpoints" / "epoch-1").mkdir(parents=True)
    (folder / "checkpoints" / "epoch-1" / "adapter.bin").write_bytes(b"a")

    storage.release_job("tj-1")  # nothing to upload, nothing to free

    assert (folder / "checkpoints" / "epoch-1" / "adapter.bin").read_bytes() == b"a"
    assert storage.fetch_job("tj-1") == folder
