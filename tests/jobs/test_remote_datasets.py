"""gs:// and s3:// datasets: where their cached copy goes and how it is written. gs:// through a
stand-in fsspec (no network); s3:// against a real S3-compatible server (moto), read with the
S3 settings of tuneforge's own store."""

from __future__ import annotations

import contextlib
import io
import sys
import time
import types
from pathlib import Path

import pytest

from tuneforge.errors import InvalidArgument
from tuneforge.jobs import datasets
from tuneforge.storage.object_store import S3Location


@pytest.fixture
def fake_fsspec(monkeypatch) -> dict[str, bytes]:
    """A stand-in fsspec whose ``open`` reads from this dict of URI → bytes."""
    blobs: dict[str, bytes] = {}
    module = types.ModuleType("fsspec")

    def open_(uri, mode="rb"):
        if uri not in blobs:
            raise FileNotFoundError(uri)
        return contextlib.closing(io.BytesIO(blobs[uri]))

    module.open = open_  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fsspec", module)
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: object())
    return blobs


def fetch(uri: str, settings, cache: Path, *, check_size=None) -> Path:
    return datasets._remote(uri, settings, "training_file", True, cache, check_size)


@pytest.mark.parametrize("uri", ["gs://b/../../x.jsonl", "gs://b/a", "s3://bucket/a.jsonl"])
def test_cache_path_stays_in_the_cache(fake_fsspec, settings, tmp_path, uri):
    cache = tmp_path / "cache"
    target = datasets._remote(uri, settings, "training_file", False, cache)
    assert target.parent == cache
    assert target.resolve().is_relative_to(cache.resolve())


def test_cache_name_is_a_hash_keeping_the_extension():
    name = datasets.cache_name("gs://bucket/data/train.jsonl")
    assert len(name) == 64 + len(".jsonl") and name.endswith(".jsonl")
    assert datasets.cache_name("gs://bucket/other/train.jsonl") != name
    assert "/" not in datasets.cache_name("gs://b/x.a/b")


def test_fetch_writes_the_file_whole_and_leaves_no_partial(fake_fsspec, settings, tmp_path):
    uri = "gs://bucket/train.jsonl"
    fake_fsspec[uri] = b'{"a": 1}\n'
    cache = tmp_path / "cache"
    target = fetch(uri, settings, cache)
    assert target.read_bytes() == b'{"a": 1}\n'
    assert [p.name for p in cache.iterdir()] == [target.name]


def test_a_missing_object_is_named_and_leaves_neither_target_nor_partial(
    fake_fsspec, settings, tmp_path
):
    cache = tmp_path / "cache"
    with pytest.raises(InvalidArgument) as refused:
        fetch("gs://bucket/missing.jsonl", settings, cache)
    assert str(refused.value) == "training_file: there is no object at 'gs://bucket/missing.jsonl'"
    assert list(cache.iterdir()) == []


def test_missing_packages_are_named(monkeypatch, settings, tmp_path):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InvalidArgument, match="needs the packages fsspec and gcsfs"):
        datasets._remote("gs://b/x", settings, "training_file", False, Path(tmp_path))


# --- s3:// on an S3-compatible server --------------------------------------------------------


@pytest.fixture
def s3_dataset_settings(settings, s3_server):
    """A server whose own store is s3://<store bucket>/tuneforge, reaching a second bucket of
    datasets on the same endpoint with the same credentials."""
    return s3_server.settings(settings, s3_server.new_bucket())


def test_an_s3_dataset_is_read_with_the_stores_endpoint_and_credentials(
    s3_dataset_settings, s3_server, tmp_path
):
    bucket = s3_server.new_bucket()
    lines = b"".join(b'{"messages": [], "n": %d}\n' % n for n in range(3000))  # over a chunk
    s3_server.put(bucket, "team/train.jsonl", lines)
    target = fetch(f"s3://{bucket}/team/train.jsonl", s3_dataset_settings, tmp_path / "cache")
    assert target.read_bytes() == lines


def test_an_s3_dataset_outside_the_store_needs_no_store(settings, s3_server, tmp_path):
    """Datasets on S3 while uploads and results stay on the local disk: only the endpoint and
    credentials are set."""
    local = s3_server.settings(settings, "unused").model_copy(update={"storage_url": None})
    bucket = s3_server.new_bucket()
    s3_server.put(bucket, "train.jsonl", b"{}\n")
    assert fetch(f"s3://{bucket}/train.jsonl", local, tmp_path / "cache").read_bytes() == b"{}\n"


def test_a_missing_s3_object_is_named(s3_dataset_settings, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    cache = tmp_path / "cache"
    with pytest.raises(InvalidArgument) as refused:
        fetch(f"s3://{bucket}/nothing.jsonl", s3_dataset_settings, cache)
    assert str(refused.value) == (
        f"training_file: there is no object at 's3://{bucket}/nothing.jsonl'"
    )
    assert list(cache.iterdir()) == []


def test_an_s3_object_of_tuneforges_own_store_is_refused(s3_dataset_settings, tmp_path):
    """Another project's upload sits in the store's bucket: naming it by URI must not read it."""
    store = S3Location.parse(s3_dataset_settings.storage_url)
    inside = f"{store.url}/files/file-0123456789abcdef.jsonl"
    with pytest.raises(InvalidArgument) as refused:
        datasets._remote(inside, s3_dataset_settings, "training_file", False, tmp_path)
    assert "is inside tuneforge's own storage" in str(refused.value)
    assert "name an uploaded file by its id" in str(refused.value)
    beside = f"s3://{store.bucket}/elsewhere/train.jsonl"  # the same bucket, outside the prefix
    assert datasets._remote(beside, s3_dataset_settings, "training_file", False, tmp_path)


@pytest.mark.parametrize(
    "uri", ["s3://", "s3://bucket", "s3://bucket/", "s3://b/../../etc/passwd", "s3://b/a//x"]
)
def test_an_s3_uri_without_a_plain_key_is_refused(settings, tmp_path, uri):
    with pytest.raises(InvalidArgument, match="is not s3://bucket/key"):
        datasets._remote(uri, settings, "training_file", False, tmp_path)


def test_no_spelling_of_a_uri_reaches_into_the_store(s3_dataset_settings, tmp_path):
    """The bucket goes into the request's URL as written, where dot segments are resolved and
    ``?`` starts a query: each of these would address the store's own bucket."""
    store = S3Location.parse(s3_dataset_settings.storage_url)
    upload = f"{store.prefix}/files/file-0123456789abcdef.jsonl"
    for uri in [
        f"s3://../{store.bucket}/{upload}",
        f"s3://./{store.bucket}/{upload}",
        f"s3://%2e%2e/{store.bucket}/{upload}",
        f"s3://{store.bucket}?/{upload}",
        f"s3://{store.bucket}#/{upload}",
        f"s3://{store.bucket.upper()}/{upload}",
        f"s3://{store.bucket}/{store.prefix}/files/a\x01.jsonl",
    ]:
        with pytest.raises(InvalidArgument, match="is not s3://bucket/key"):
            fetch(uri, s3_dataset_settings, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing was fetched


def test_an_unreachable_store_is_named_without_its_address(settings, tmp_path):
    """The server's S3 endpoint is its own business: the user learns the object could not be
    read, and is not kept waiting on obstore's three minutes of retries."""
    from tests.servers import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = settings.model_copy(
        update={"s3_endpoint_url": endpoint, "s3_access_key_id": "k", "s3_secret_access_key": "s"}
    )
    started = time.monotonic()
    with pytest.raises(InvalidArgument) as refused:
        fetch("s3://datasets/train.jsonl", unreachable, tmp_path / "cache")
    assert time.monotonic() - started < 60
    message = str(refused.value)
    assert message.startswith("training_file: 's3://datasets/train.jsonl' cannot be read: ")
    assert "127.0.0.1" not in message


def test_an_s3_fetch_stops_at_the_size_limit(s3_dataset_settings, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    s3_server.put(bucket, "big.png", b"\0" * (3 << 20))

    def at_most_a_mib(size: int) -> None:
        if size > 1 << 20:
            raise InvalidArgument(f"{size} bytes is over the limit", "part")

    cache = tmp_path / "cache"
    with pytest.raises(InvalidArgument, match="over the limit"):
        fetch(f"s3://{bucket}/big.png", s3_dataset_settings, cache, check_size=at_most_a_mib)
    assert list(cache.iterdir()) == []
