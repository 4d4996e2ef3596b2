"""ObjectStorage against a real S3-compatible server (moto's, in a subprocess): the bucket's
layout, uploads, a job's saves mirrored to the store, the cache of fetched objects, and what
it refuses."""

from __future__ import annotations

import pytest

from tuneforge.errors import NotFound
from tuneforge.storage import ObjectStorage, Storage, StorageError, file_uri, storage_for
from tuneforge.storage.object_store import S3Location


@pytest.fixture
def storage(s3_settings) -> ObjectStorage:
    storage = storage_for(s3_settings)
    assert isinstance(storage, ObjectStorage)
    storage.prepare()
    return storage


def keys(storage: ObjectStorage, prefix: str) -> list[str]:
    return sorted(m["path"] for m in storage._list(prefix))


def test_settings_with_a_storage_url_give_an_object_storage(storage, s3_settings):
    assert isinstance(storage, Storage)  # every member of the protocol
    assert storage.location == s3_settings.storage_url
    data = s3_settings.data_dir.absolute()
    assert storage.upload_uri("file-1") == f"{storage.location}/files/file-1.jsonl"
    assert storage.job_uri("tj-1", "metrics.csv") == f"{storage.location}/jobs/tj-1/metrics.csv"
    assert storage.job_dir("tj-1") == data / "cache" / "jobs" / "tj-1"  # a cache, not a store
    assert storage.models_dir == data / "models"


@pytest.mark.parametrize("url", ["s3://", "s3:///x", "gs://b/p", "s3://b/../x", "/tmp/x"])
def test_a_storage_url_that_names_no_bucket_is_refused(url):
    with pytest.raises(StorageError):
        S3Location.parse(url)


def test_an_upload_is_put_whole_and_read_back(storage):
    uri = storage.write_upload("file-1", iter([b'{"a": ', b"1}\n"]))

    assert storage.exists(uri)
    assert storage.read_bytes(uri) == b'{"a": 1}\n'
    assert storage.local_path(uri).read_bytes() == b'{"a": 1}\n'
    assert keys(storage, "files/") == ["files/file-1.jsonl"]


def test_an_upload_that_fails_midway_leaves_nothing(storage):
    def chunks():
        yield b"x" * 1000
        raise OSError("client went away")

    with pytest.raises(OSError):
        storage.write_upload("file-2", chunks())
    assert keys(storage, "files/") == []


def test_a_missing_object_is_not_found(storage):
    missing = storage.upload_uri("file-404")
    assert not storage.exists(missing)
    with pytest.raises(NotFound, match="no object at"):
        storage.read_bytes(missing)
    with pytest.raises(NotFound, match="no object at"):
        storage.local_path(missing)


@pytest.mark.parametrize(
    "uri",
    [
        "s3://another-bucket/tuneforge/files/file-1.jsonl",
        "s3://{bucket}/other-prefix/files/file-1.jsonl",
        "s3://{bucket}/tuneforge-not/files/file-1.jsonl",
        "s3://{bucket}/tuneforge/files/../../x",
        "gs://{bucket}/tuneforge/files/file-1.jsonl",
    ],
)
def test_uris_outside_the_configured_prefix_are_refused(storage, uri):
    uri = uri.format(bucket=storage.where.bucket)
    for call in (storage.read_bytes, storage.local_path, storage.exists, storage.delete_upload):
        with pytest.raises(StorageError):
            call(uri)


def test_ids_never_name_another_key(storage):
    for bad in ("..", "a/b", "", "../x"):
        with pytest.raises(StorageError):
            storage.upload_uri(bad)
        with pytest.raises(StorageError):
            storage.job_dir(bad)


def test_only_uploads_are_deleted_as_uploads(storage):
    upload = storage.write_upload("file-1", [b"{}\n"])
    folder = storage.job_dir("tj-1")
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("step\n")
    metrics = storage.publish(folder / "metrics.csv")

    assert not storage.delete_upload(metrics)
    assert storage.exists(metrics)
    assert storage.delete_upload(upload)
    assert not storage.exists(upload)
    assert not storage.delete_upload(file_uri(folder / "metrics.csv"))  # an older row's file


def test_idle_uploads_are_those_not_written_for_a_while(storage):
    uri = storage.write_upload("file-1", [b"{}\n"])
    assert storage.idle_uploads(idle_for_s=3600) == []
    assert storage.idle_uploads(idle_for_s=-60) == [uri]


def test_a_jobs_saves_are_mirrored_to_the_store(storage):
    folder = storage.fetch_job("tj-1")
    checkpoints = folder / "checkpoints"
    (checkpoints / "step-2").mkdir(parents=True)
    (checkpoints / "step-2" / "adapter.bin").write_bytes(b"a" * 10)
    resume = storage.publish(checkpoints / "step-2")
    assert resume == f"{storage.location}/jobs/tj-1/checkpoints/step-2"
    assert keys(storage, "jobs/") == ["jobs/tj-1/checkpoints/step-2/adapter.bin"]

    # The engine saves epoch 1 and prunes the older resume point: the store follows.
    (checkpoints / "step-2" / "adapter.bin").unlink()
    (checkpoints / "step-2").rmdir()
    (checkpoints / "epoch-1").mkdir()
    (checkpoints / "epoch-1" / "adapter.bin").write_bytes(b"b" * 10)
    epoch = storage.publish(checkpoints / "epoch-1")
    assert keys(storage, "jobs/") == ["jobs/tj-1/checkpoints/epoch-1/adapter.bin"]

    # The run ends: what changed since (a trim) is uploaded, and the local copy freed.
    (checkpoints / "epoch-1" / "adapter.bin").write_bytes(b"c" * 4)
    (folder / "logs").mkdir()
    (folder / "logs" / "runner.log").write_text("done\n")
    storage.release_job("tj-1")
    assert sorted(p.name for p in folder.iterdir()) == ["logs"]
    assert (storage.local_path(epoch) / "adapter.bin").read_bytes() == b"c" * 4

    # Another machine (another data dir) running the job again starts from its saves.
    elsewhere = ObjectStorage(
        storage.location, storage.models_dir.parent.parent / "worker-2", _options(storage)
    )
    resumed = elsewhere.fetch_job("tj-1")
    assert (resumed / "checkpoints" / "epoch-1" / "adapter.bin").read_bytes() == b"c" * 4

    storage.delete_job("tj-1")
    assert keys(storage, "jobs/") == []
    assert not folder.exists()


def test_publish_refuses_what_is_not_in_a_jobs_folder(storage, tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    with pytest.raises(StorageError):
        storage.publish(outside)


def test_a_changed_checkpoint_is_fetched_again(storage):
    folder = storage.fetch_job("tj-1")
    save = folder / "checkpoints" / "epoch-1"
    save.mkdir(parents=True)
    (save / "adapter.bin").write_bytes(b"first")
    uri = storage.publish(save)

    first = storage.local_path(uri)
    assert (first / "adapter.bin").read_bytes() == b"first"
    assert storage.local_path(uri) == first  # unchanged: the cached copy

    (save / "adapter.bin").write_bytes(b"second")
    storage.publish(save)
    second = storage.local_path(uri)
    assert second != first
    assert (second / "adapter.bin").read_bytes() == b"second"


def test_the_cache_drops_the_least_recently_used_past_its_size(storage):
    storage.cache_max_bytes = 2500
    uris = [storage.write_upload(f"file-{i}", [bytes(1000)]) for i in range(3)]
    paths = [storage.local_path(uri) for uri in uris]

    assert not paths[0].exists()  # the oldest went to keep the cache within 2500 bytes
    assert paths[1].exists() and paths[2].exists()
    assert storage.local_path(uris[0]).read_bytes() == bytes(1000)  # fetched again on demand


def _options(storage: ObjectStorage):
    from tests.s3_server import CREDENTIALS, REGION
    from tuneforge.storage.object_store import S3Options

    return S3Options(
        endpoint_url=storage.store.config["endpoint"],
        region=REGION,
        access_key_id=CREDENTIALS["s3_access_key_id"],
        secret_access_key=CREDENTIALS["s3_secret_access_key"],
    )


def test_a_bucket_that_does_not_answer_stops_the_start(s3_settings):
    missing = s3_settings.model_copy(update={"storage_url": "s3://no-such-bucket/tuneforge"})
    with pytest.raises(StorageError, match="s3://no-such-bucket/tuneforge cannot be listed"):
        storage_for(missing).prepare()
