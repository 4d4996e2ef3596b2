"""Object URIs: fsspec's spelling, round-tripping any local path; plain paths are old rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.storage import StorageError, file_uri, local_file, scheme_of

AWKWARD = ["plain", "with space", "per%20cent", "hash#and?query", "ünïcode", "a:b"]


@pytest.mark.parametrize("name", AWKWARD)
def test_a_local_path_round_trips_through_its_uri(tmp_path, name):
    path = tmp_path / name / "file.jsonl"
    uri = file_uri(path)
    assert uri == f"file://{path}"  # fsspec's spelling: no percent-encoding
    assert scheme_of(uri) == "file"
    assert local_file(uri) == path


@pytest.mark.parametrize("name", AWKWARD)
def test_fsspec_opens_the_same_file(tmp_path, name):
    """The next implementation goes through fsspec: it must read a row's URI as we do."""
    fsspec = pytest.importorskip("fsspec")
    path = tmp_path / name
    path.write_bytes(b"content")
    with fsspec.open(file_uri(path), "rb") as handle:
        assert handle.read() == b"content"


def test_a_relative_path_gets_an_absolute_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_file(file_uri(Path("data/x"))) == tmp_path / "data" / "x"


@pytest.mark.parametrize("old", ["/srv/data/files/file-1.jsonl", "data/jobs/tj-1/epoch-1"])
def test_a_plain_path_of_an_old_row_is_a_local_file(old):
    assert scheme_of(old) is None
    assert local_file(old) == Path(old)


@pytest.mark.parametrize(
    ("uri", "scheme"), [("s3://bucket/key", "s3"), ("GS://b/k", "gs"), ("file:///x", "file")]
)
def test_scheme_of(uri, scheme):
    assert scheme_of(uri) == scheme


@pytest.mark.parametrize("uri", ["s3://bucket/key.jsonl", "file://relative/path", "file://"])
def test_what_is_no_local_file_is_refused(uri):
    with pytest.raises(StorageError):
        local_file(uri)
