"""gs:// and s3:// datasets: where their cached copy goes and how it is written (no network:
fsspec and the backend check are replaced)."""

from __future__ import annotations

import contextlib
import io
import sys
import types
from pathlib import Path

import pytest

from tuneforge.jobs import datasets


@pytest.fixture
def fake_fsspec(monkeypatch) -> dict[str, bytes]:
    """A stand-in fsspec whose ``open`` reads from this dict of URI → bytes."""
    blobs: dict[str, bytes] = {}
    module = types.ModuleType("fsspec")
    module.open = lambda uri, mode="rb": contextlib.closing(io.BytesIO(blobs[uri]))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fsspec", module)
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: object())
    return blobs


@pytest.mark.parametrize("uri", ["gs://b/../../x.jsonl", "s3://b/../../../etc/passwd", "gs://b/a"])
def test_cache_path_stays_in_the_cache(fake_fsspec, tmp_path, uri):
    cache = tmp_path / "cache"
    target = datasets._remote(uri, uri.split(":")[0], "training_file", False, cache)
    assert target.parent == cache
    assert target.resolve().is_relative_to(cache.resolve())


def test_cache_name_is_a_hash_keeping_the_extension():
    name = datasets.cache_name("gs://bucket/data/train.jsonl")
    assert len(name) == 64 + len(".jsonl") and name.endswith(".jsonl")
    assert datasets.cache_name("gs://bucket/other/train.jsonl") != name
    assert "/" not in datasets.cache_name("gs://b/x.a/b")


def test_fetch_writes_the_file_whole_and_leaves_no_partial(fake_fsspec, tmp_path):
    uri = "gs://bucket/train.jsonl"
    fake_fsspec[uri] = b'{"a": 1}\n'
    cache = tmp_path / "cache"
    target = datasets._remote(uri, "gs", "training_file", True, cache)
    assert target.read_bytes() == b'{"a": 1}\n'
    assert [p.name for p in cache.iterdir()] == [target.name]


def test_a_failed_fetch_leaves_neither_target_nor_partial(fake_fsspec, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(KeyError):
        datasets._remote("gs://bucket/missing.jsonl", "gs", "training_file", True, cache)
    assert list(cache.iterdir()) == []


def test_missing_packages_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Exception, match="fsspec and gcsfs"):
        datasets._remote("gs://b/x", "gs", "training_file", False, Path(tmp_path))
