"""Images, PDFs and audio uploaded through the files API (as the openai SDK sends them) are
checked as media parts, not as JSONL datasets: processed, or in error with what is wrong."""

from __future__ import annotations

import openai
import pytest

from tests.api.conftest import Api
from tests.media_bytes import pdf_bytes, png_bytes, wav_bytes


@pytest.fixture
def sdk(api: Api) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=api.key, http_client=api.client)


def upload(api: Api, name: str, content: bytes, purpose: str = "user_data") -> dict:
    response = api.client.post(
        "/v1/files",
        headers=api.headers(),
        files={"file": (name, content)},
        data={"purpose": purpose},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("name", "content", "purpose", "mime_type"),
    [
        ("cat.png", png_bytes(), "vision", "image/png"),
        ("page.pdf", pdf_bytes(2), "user_data", "application/pdf"),
        ("tone.wav", wav_bytes(), "user_data", "audio/wav"),
    ],
)
def test_media_files_upload_processed_through_the_sdk(
    api: Api, sdk: openai.OpenAI, name: str, content: bytes, purpose: str, mime_type: str
):
    created = sdk.files.create(file=(name, content), purpose=purpose)
    assert (created.status, created.status_details, created.bytes) == (
        "processed",
        None,
        len(content),
    )
    body = api.client.get(f"/v1/files/{created.id}", headers=api.headers()).json()
    assert (body["format"], body["example_count"]) == (mime_type, None)
    assert body["validation"]["ok"] is True and body["validation"]["format"] == mime_type
    assert sdk.files.content(created.id).read() == content


def test_a_truncated_png_is_in_error_saying_why(api: Api, sdk: openai.OpenAI):
    created = sdk.files.create(file=("cut.png", png_bytes((64, 64))[:76]), purpose="vision")
    assert created.status == "error"
    assert created.status_details == "the image cannot be decoded: image file is truncated"
    body = api.client.get(f"/v1/files/{created.id}", headers=api.headers()).json()
    assert body["format"] == "image/png"
    [problem] = body["validation"]["problems"]
    assert problem["message"] == created.status_details


def test_media_limits_apply_to_uploads(api: Api, monkeypatch):
    monkeypatch.setattr(api.service.settings, "max_pdf_pages", 2)
    monkeypatch.setattr(api.service.settings, "max_audio_seconds", 0.5)
    monkeypatch.setattr(api.service.settings, "max_media_bytes", 10_000)

    pages = upload(api, "long.pdf", pdf_bytes(3))
    assert pages["status"] == "error"
    assert pages["status_details"] == (
        "the PDF has 3 pages; at most 2 are allowed (TUNEFORGE_MAX_PDF_PAGES)"
    )
    long = upload(api, "long.wav", wav_bytes(1.0, rate=4000))
    assert long["status"] == "error"
    assert "TUNEFORGE_MAX_AUDIO_SECONDS" in long["status_details"]
    big = upload(api, "big.wav", wav_bytes(0.25, rate=48_000))
    assert big["status"] == "error"
    assert "a media file may hold at most 10,000" in big["status_details"]
    assert "TUNEFORGE_MAX_MEDIA_BYTES" in big["status_details"]


def test_other_files_are_still_validated_as_datasets(api: Api):
    not_media = upload(api, "notes.txt", b"just some text\n", purpose="fine-tune")
    assert not_media["status"] == "error" and not_media["format"] is None
    assert "line 1" in not_media["status_details"]
    utf16 = upload(api, "d.jsonl", '{"messages": []}\n'.encode("utf-16"), purpose="fine-tune")
    assert utf16["format"] is None  # its byte order mark is not taken for an MP3 frame
