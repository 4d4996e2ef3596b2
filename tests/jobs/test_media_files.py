"""Media parts named by URI read for one project (uploaded file ids, paths under the dataset
roots, gs:// through fsspec, s3:// with the store's S3 settings, http(s) only when allowed), and
a conversation's media resolved and checked; every refusal names the part's field path."""

from __future__ import annotations

import contextlib
import io
import sys
import types
from pathlib import Path

import httpx
import pytest

from tests.media_bytes import pdf_bytes, png_bytes, wav_bytes
from tuneforge.config import Settings
from tuneforge.data.media import Media, MediaLimits, media_limits
from tuneforge.data.records import Conversation, Turn
from tuneforge.errors import InvalidArgument
from tuneforge.inference.types import ModelTarget
from tuneforge.jobs import datasets
from tuneforge.jobs.media_files import (
    MediaReader,
    refuse_unreadable,
    resolved,
    target_media_kinds,
)
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.testing import OTHER_TEST_PROJECT, TEST_PROJECT

PART = "contents[0].parts[1].fileData"
PNG = png_bytes()
TRUNCATED_PNG = png_bytes((64, 64))[:76]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    roots = tmp_path / "roots"
    roots.mkdir()
    return Settings(data_dir=tmp_path / "data", dataset_roots=[roots])


def uploaded(db: Database, settings: Settings, project_id: str, content: bytes) -> str:
    file_id = repo.new_file_id()
    uri = storage_for(settings).write_upload(file_id, [content])
    with db.session() as session:
        repo.ensure_project(session, project_id)
        repo.create_file(
            session,
            project_id,
            file_id=file_id,
            filename="x.png",
            bytes=len(content),
            sha256="0" * 64,
            purpose="vision",
            path=uri,
        )
    return file_id


def by_uri(uri: str, kind="image", mime_type="image/png") -> Media:
    return Media(kind, mime_type, uri=uri, path=PART)


def refusal(reader: MediaReader, media: Media) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        reader.read(media)
    assert caught.value.param == PART
    assert str(caught.value).startswith(f"{PART}: ")
    return caught.value


def test_an_uploaded_file_is_read_by_id_in_its_own_project_only(db: Database, settings):
    file_id = uploaded(db, settings, TEST_PROJECT, PNG)
    assert MediaReader(db, settings, TEST_PROJECT).read(by_uri(file_id)) == PNG
    assert MediaReader(db, settings, TEST_PROJECT).read(by_uri(f"files/{file_id}")) == PNG

    other = MediaReader(db, settings, OTHER_TEST_PROJECT)
    assert f"no file {file_id!r} in this project" in str(refusal(other, by_uri(file_id)))


def test_a_path_is_read_only_under_the_dataset_roots(db: Database, settings):
    inside = settings.dataset_roots[0] / "cat.png"
    inside.write_bytes(PNG)
    reader = MediaReader(db, settings, TEST_PROJECT)
    assert reader.read(by_uri(str(inside))) == PNG

    message = str(refusal(reader, by_uri("/etc/passwd")))
    assert "not under a dataset root (TUNEFORGE_DATASET_ROOTS)" in message
    escaping = str(settings.dataset_roots[0] / ".." / ".." / "etc" / "passwd")
    assert "TUNEFORGE_DATASET_ROOTS" in str(refusal(reader, by_uri(escaping)))
    assert "no such file" in str(refusal(reader, by_uri(str(inside.with_name("dog.png")))))
    assert "unsupported URI scheme 'ftp'" in str(refusal(reader, by_uri("ftp://host/x.png")))


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(db: Database, settings):
    big = settings.dataset_roots[0] / "big.png"
    big.write_bytes(PNG + b"\0" * 100)
    reader = MediaReader(db, settings, TEST_PROJECT, limits=MediaLimits(part_bytes=len(PNG)))
    message = str(refusal(reader, by_uri(str(big))))
    assert f"holds {len(PNG) + 100:,} bytes" in message and "TUNEFORGE_MAX_MEDIA_BYTES" in message


def test_gs_uris_are_read_through_fsspec(db: Database, settings, monkeypatch):
    blobs = {"gs://bucket/cat.png": PNG}
    module = types.ModuleType("fsspec")
    module.open = lambda uri, mode="rb": contextlib.closing(io.BytesIO(blobs[uri]))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fsspec", module)
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: object())
    assert MediaReader(db, settings, TEST_PROJECT).read(by_uri("gs://bucket/cat.png")) == PNG


def test_s3_uris_are_read_with_the_stores_s3_settings(db: Database, settings, s3_server):
    settings = s3_server.settings(settings, s3_server.new_bucket())
    bucket = s3_server.new_bucket()
    s3_server.put(bucket, "pets/cat.png", PNG)
    reader = MediaReader(db, settings, TEST_PROJECT)
    assert reader.read(by_uri(f"s3://{bucket}/pets/cat.png")) == PNG
    message = str(refusal(reader, by_uri(f"s3://{bucket}/pets/dog.png")))
    assert message == f"{PART}: there is no object at 's3://{bucket}/pets/dog.png'"


class Endless(io.RawIOBase):
    """An object that never ends, as a remote store might stream one."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = b"\0" * len(buffer)
        return len(buffer)


def test_a_remote_object_is_fetched_only_up_to_the_byte_limit(db: Database, settings, monkeypatch):
    module = types.ModuleType("fsspec")
    module.open = lambda uri, mode="rb": Endless()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fsspec", module)
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: object())
    reader = MediaReader(db, settings, TEST_PROJECT, limits=MediaLimits(part_bytes=3 << 20))

    message = str(refusal(reader, by_uri("gs://bucket/endless.png")))

    assert message.startswith(f"{PART}: 'gs://bucket/endless.png': ")
    assert "at most 3,145,728 are allowed (TUNEFORGE_MAX_MEDIA_BYTES)" in message
    cache = storage_for(settings).cache_dir
    assert not [path for path in cache.rglob("*") if path.is_file()]  # nor a partial copy


def test_http_urls_are_refused_unless_the_operator_allows_fetching(db: Database, settings):
    reader = MediaReader(db, settings, TEST_PROJECT)
    message = str(refusal(reader, by_uri("https://example.com/cat.png")))
    assert "TUNEFORGE_ALLOW_MEDIA_URLS" in message and "POST /v1/files" in message


def fetching(db, settings, handler, limits: MediaLimits | None = None) -> MediaReader:
    allowed = settings.model_copy(update={"allow_media_urls": True})
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return MediaReader(db, allowed, TEST_PROJECT, limits=limits, http=client)


def test_allowed_urls_are_fetched_with_the_byte_limit_enforced(db: Database, settings):
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cat.png":
            return httpx.Response(200, content=PNG)
        if request.url.path == "/endless.png":  # no length declared: counted as it streams
            return httpx.Response(200, content=iter([PNG] * 1000))
        return httpx.Response(404)

    reader = fetching(db, settings, serve, MediaLimits(part_bytes=10 * len(PNG)))
    assert reader.read(by_uri("https://example.com/cat.png")) == PNG
    message = str(refusal(reader, by_uri("https://example.com/endless.png")))
    assert "TUNEFORGE_MAX_MEDIA_BYTES" in message and "endless.png" in message
    assert "answered HTTP 404" in str(refusal(reader, by_uri("https://example.com/gone.png")))


def test_an_unreachable_url_is_a_clear_refusal(db: Database, settings):
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    reader = fetching(db, settings, unreachable)
    message = str(refusal(reader, by_uri("https://example.com/cat.png")))
    assert "could not be fetched: timed out" in message


def conversation(*media: Media) -> Conversation:
    return Conversation((Turn("user", "what is this?", media=media),))


class Reader:
    """A MediaSource from a dict of URI → bytes."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def read(self, media: Media) -> bytes:
        return media.data if media.data is not None else self.blobs[media.uri]


def test_resolved_fills_in_every_parts_bytes_and_an_unknown_type():
    parts = (
        Media("image", "image/png", uri="file-a", path="messages[0].content[0].file.file_id"),
        Media("image", "", uri="https://x/y", path="messages[0].content[1].image_url.url"),
        Media("document", "application/pdf", data=pdf_bytes(), path="p"),
        Media("audio", "audio/wav", data=wav_bytes(), path="q"),
    )
    given = conversation(*parts)
    done = resolved(given, Reader({"file-a": PNG, "https://x/y": PNG}), MediaLimits())
    assert [m.data for m in done.media] == [PNG, PNG, parts[2].data, parts[3].data]
    assert done.media[1].mime_type == "image/png"  # from the bytes
    assert [m.path for m in done.media] == [m.path for m in parts]
    assert done.turns[0].text == "what is this?"
    assert resolved(Conversation((Turn("user", "hi"),)), Reader({}), MediaLimits()).turns[0].text


@pytest.mark.parametrize(
    ("media", "fragment"),
    [
        (Media("image", "image/png", data=TRUNCATED_PNG), "cannot be decoded: image file is trunc"),
        (Media("image", "image/png", data=pdf_bytes()), "declared image/png, but the bytes are"),
        (Media("image", "", data=b"<html>"), "the bytes are not images of a known type"),
        (Media("document", "application/pdf", data=pdf_bytes(3)), "TUNEFORGE_MAX_PDF_PAGES"),
        (Media("audio", "audio/wav", data=wav_bytes(1.0)), "TUNEFORGE_MAX_AUDIO_SECONDS"),
    ],
)
def test_each_part_is_checked_and_named(media: Media, fragment: str):
    media = Media(media.kind, media.mime_type, data=media.data, path=PART)
    limits = MediaLimits(pdf_pages=2, audio_seconds=0.5)
    with pytest.raises(InvalidArgument) as caught:
        resolved(conversation(media), Reader({}), limits)
    assert caught.value.param == PART
    assert str(caught.value).startswith(f"{PART}: ") and fragment in str(caught.value)


def test_too_many_parts_names_the_first_one_over_the_limit_before_reading_any():
    parts = [Media("image", "image/png", uri=f"file-{i}", path=f"p[{i}]") for i in range(10_000)]
    with pytest.raises(InvalidArgument) as caught:
        resolved(conversation(*parts), Reader({}), MediaLimits())  # reading would fail: no blobs
    assert str(caught.value) == (
        "p[64]: an example holds at most 64 media parts; this one has 10,000"
        " (TUNEFORGE_MAX_MEDIA_PARTS)"
    )
    assert caught.value.param == "p[64]"


def test_media_limits_come_from_the_settings():
    settings = Settings(
        max_media_parts=3,
        max_media_bytes=1000,
        max_media_pixels=99,
        max_pdf_pages=2,
        max_audio_seconds=1.5,
    )
    assert media_limits(settings) == MediaLimits(3, 1000, 99, 2, 1.5)
    assert media_limits(Settings()) == MediaLimits()


def save_config(folder: Path, config) -> str:
    config.save_pretrained(folder)
    return str(folder)


def test_what_a_model_reads_comes_from_its_config(tmp_path: Path):
    from transformers import LlamaConfig, LlavaConfig, Qwen2AudioConfig

    text = save_config(tmp_path / "text", LlamaConfig(num_hidden_layers=1))
    vision = save_config(tmp_path / "vision", LlavaConfig())
    audio = save_config(tmp_path / "audio", Qwen2AudioConfig())
    assert target_media_kinds(ModelTarget("t", text)) == frozenset()
    assert target_media_kinds(ModelTarget("v", vision)) == {"image", "document"}
    assert target_media_kinds(ModelTarget("a", audio)) == {"audio"}
    # A full fine-tune reads what its own folder says.
    assert target_media_kinds(ModelTarget("ft", text, weights_path=Path(vision))) == {
        "image",
        "document",
    }


def test_media_a_model_cannot_read_are_refused_naming_the_part():
    image = Media("image", "image/png", data=PNG, path="messages[0].content[0].image_url.url")
    audio = Media("audio", "audio/wav", data=b"", path="contents[0].parts[0].inlineData")
    with pytest.raises(InvalidArgument) as caught:
        refuse_unreadable(conversation(image), "tuneforge/tiny-chat", frozenset())
    assert str(caught.value) == (
        "messages[0].content[0].image_url.url: tuneforge/tiny-chat reads text only;"
        " it cannot take images"
    )
    assert caught.value.param == image.path
    with pytest.raises(InvalidArgument, match="reads text, images and PDF documents; it cannot"):
        refuse_unreadable(conversation(image, audio), "v", frozenset({"image", "document"}))
    refuse_unreadable(conversation(image, audio), "all", frozenset({"image", "document", "audio"}))
