"""Media parts in generation requests: read and checked before any model sees them, refused
with a 400 naming the part when the model cannot read them (never dropped), and passed to the
backend with their bytes filled in when it can. Both surfaces: OpenAI's chat completions and
Vertex's generateContent, against the built-in text-only tiny-chat."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.api.conftest import Api
from tests.api.test_vertex import PARENT, RecordingBackend, sdk_client
from tests.media_bytes import data_url, png_bytes, wav_bytes
from tuneforge.service import generation

TINY = "tuneforge/tiny-chat"
PNG = png_bytes()
VERTEX = f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat"
TEXT_ONLY = "tuneforge/tiny-chat reads text only; it cannot take"


def chat_refusal(api: Api, content: list[dict], **body) -> dict:
    response = api.client.post(
        "/v1/chat/completions",
        json={"model": TINY, "messages": [{"role": "user", "content": content}], **body},
        headers=api.headers(),
    )
    assert response.status_code == 400, response.text
    return response.json()["error"]


def vertex_refusal(api: Api, parts: list[dict], action: str = "generateContent") -> dict:
    response = api.client.post(
        f"{VERTEX}:{action}", json={"contents": [{"role": "user", "parts": parts}]},
        headers=api.headers(),
    )  # fmt: skip
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    return error


def upload(api: Api, content: bytes, key: str | None = None) -> str:
    response = api.client.post(
        "/v1/files", headers=api.headers(key), files={"file": ("cat.png", content)},
        data={"purpose": "vision"},
    )  # fmt: skip
    assert response.json()["status"] == "processed", response.text
    return response.json()["id"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


IMAGE_URL = {"type": "image_url", "image_url": {"url": data_url("image/png", PNG)}}


@pytest.mark.parametrize("stream", [False, True])
def test_an_image_to_a_text_only_model_is_refused_in_openais_shape(api: Api, stream: bool):
    error = chat_refusal(api, [{"type": "text", "text": "what colour?"}, IMAGE_URL], stream=stream)
    assert error["message"] == (
        "messages[0].content[1].image_url.url: tuneforge/tiny-chat reads text only;"
        " it cannot take images"
    )
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert error["type"] == "invalid_request_error"


def test_the_openai_sdk_raises_the_refusal(api: Api):
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=api.key, http_client=api.client)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model=TINY,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {
                            "data": b64(wav_bytes()),
                            "format": "wav"}},
                    ],
                }
            ],
        )  # fmt: skip
    assert caught.value.param == "messages[0].content[0].input_audio.data"
    assert f"{TEXT_ONLY} audio" in caught.value.message


def test_an_http_image_url_is_refused_naming_the_setting(api: Api):
    url = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    error = chat_refusal(api, [url])
    assert error["param"] == "messages[0].content[0].image_url.url"
    assert "TUNEFORGE_ALLOW_MEDIA_URLS" in error["message"]


def test_a_broken_image_is_refused_before_the_model_is_asked(api: Api):
    broken = {"type": "image_url", "image_url": {"url": data_url("image/png", PNG[:30])}}
    error = chat_refusal(api, [broken])
    assert error["param"] == "messages[0].content[0].image_url.url"
    assert "image" in error["message"] and TEXT_ONLY not in error["message"]


@pytest.fixture
def client(api: Api) -> genai.Client:
    return sdk_client(api, api.key)


def test_inline_data_to_a_text_only_model_is_refused_through_the_sdk(
    api: Api, client: genai.Client
):
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(
            model=TINY,
            contents=[
                types.Content(
                    role="user",
                    parts=[
                        types.Part(text="what colour?"),
                        types.Part.from_bytes(data=PNG, mime_type="image/png"),
                    ],
                )
            ],
        )
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.message == (f"contents[0].parts[1].inlineData: {TEXT_ONLY} images")


def test_file_data_naming_an_uploaded_file_is_read_then_refused(api: Api):
    file_id = upload(api, PNG)
    part = {"fileData": {"mimeType": "image/png", "fileUri": file_id}}
    for action in ("generateContent", "streamGenerateContent", "countTokens"):
        error = vertex_refusal(api, [part], action)
        assert error["message"] == f"contents[0].parts[0].fileData: {TEXT_ONLY} images"

    # Another project's file is not found in this one.
    other = upload(api, PNG, key=api.other_key)
    error = vertex_refusal(api, [{"fileData": {"mimeType": "image/png", "fileUri": other}}])
    assert error["message"] == (f"contents[0].parts[0].fileData: no file {other!r} in this project")


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("/etc/passwd", "is not an uploaded file and not under a dataset root"),
        ("https://example.com/cat.png", "TUNEFORGE_ALLOW_MEDIA_URLS is off"),
        ("file-doesnotexist", "no file 'file-doesnotexist' in this project"),
    ],
)
def test_file_data_the_server_will_not_read_is_refused_naming_the_field(
    api: Api, uri: str, fragment: str
):
    error = vertex_refusal(api, [{"fileData": {"mimeType": "image/png", "fileUri": uri}}])
    assert error["message"].startswith("contents[0].parts[0].fileData: ")
    assert fragment in error["message"]


def test_a_model_that_reads_media_gets_the_resolved_bytes(api: Api, monkeypatch):
    """The seam the inference layer serves media from: the backend receives each part with
    its bytes read (an uploaded file's too) and its path kept."""
    backend = RecordingBackend([])
    monkeypatch.setattr(api.service.generation, "_backend", backend)
    monkeypatch.setattr(generation, "target_media_kinds", lambda target: frozenset({"image"}))
    file_id = upload(api, PNG)
    parts = [
        {"text": "same colour?"},
        {"inlineData": {"mimeType": "image/png", "data": b64(PNG)}},
        {"fileData": {"mimeType": "image/png", "fileUri": file_id}},
    ]
    response = api.client.post(
        f"{VERTEX}:generateContent", json={"contents": [{"role": "user", "parts": parts}]},
        headers=api.headers(),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    _, prompt, _ = backend.calls[-1]
    assert [(m.path, m.data) for m in prompt.media] == [
        ("contents[0].parts[1].inlineData", PNG),
        ("contents[0].parts[2].fileData", PNG),
    ]
    assert prompt.turns[0].text == "same colour?"

    # Audio it cannot read is still refused, never dropped.
    audio = {"inlineData": {"mimeType": "audio/wav", "data": b64(wav_bytes())}}
    error = vertex_refusal(api, [*parts, audio])
    assert "reads text and images; it cannot take audio" in error["message"]
    assert len(backend.calls) == 1
    assert json.loads(response.text)["candidates"][0]["content"]["parts"][0]["text"] == "positive"


def test_media_to_a_reward_model_that_reads_text_only_are_refused(api: Api, monkeypatch):
    tiny = api.service.models.target("default", TINY)
    reward = replace(tiny, name="ft:reward", scores_only=True)
    monkeypatch.setattr(api.service.models, "scoring_target", lambda *args, **kwargs: reward)
    answered = [
        {"role": "user", "content": [{"type": "text", "text": "colour?"}, IMAGE_URL]},
        {"role": "assistant", "content": "red"},
    ]
    response = api.client.post(
        "/v1/score",
        json={"model": "ft:reward", "conversations": [answered]},
        headers=api.headers(),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == (
        "conversations[0][0].content[1].image_url.url: ft:reward reads text only;"
        " it cannot take images"
    )


def test_a_job_on_images_for_a_text_only_base_is_refused_naming_line_and_field(api: Api, tmp_path):
    from tuneforge.data.media_samples import media_examples, to_openai

    lines = [json.dumps(to_openai(e)) for e in media_examples("image", 12)]
    uploaded = api.client.post(
        "/v1/files",
        headers=api.headers(),
        files={"file": ("images.jsonl", "\n".join(lines).encode())},
        data={"purpose": "fine-tune"},
    )
    assert uploaded.json()["status"] == "processed", uploaded.text
    body = {"model": TINY, "training_file": uploaded.json()["id"]}
    response = api.client.post("/v1/fine_tuning/jobs", json=body, headers=api.headers())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "training_file"
    assert (
        "line 1, messages[0].content[0].image_url.url: " + TEXT_ONLY + " images"
        in (error["message"])
    )
    vision = api.client.post(
        "/v1/fine_tuning/jobs", json={**body, "model": "tuneforge/tiny-vision"},
        headers=api.headers(),
    )  # fmt: skip
    assert vision.status_code == 200, vision.text


def test_audio_and_a_pdf_reach_the_models_that_read_them_through_the_openai_sdk(api: Api):
    import random

    from tuneforge.data.media_samples import figure_pdf, tone_wav

    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=api.key, http_client=api.client)
    rng = random.Random(0)
    audio = {
        "type": "input_audio",
        "input_audio": {"data": b64(tone_wav(rng, "low")), "format": "wav"},
    }
    pdf = {
        "type": "file",
        "file": {"file_data": data_url("application/pdf", figure_pdf(rng, "square"))},
    }
    without = sdk.chat.completions.create(
        model="tuneforge/tiny-audio", messages=[{"role": "user", "content": "which?"}], max_tokens=2
    )
    for model, part, placeholders in (
        ("tuneforge/tiny-audio", audio, 25),
        ("tuneforge/tiny-vision", pdf, 64),
    ):
        completion = sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": [part, {"type": "text", "text": "which?"}]}],
            max_tokens=2,
        )
        assert completion.choices[0].message.content is not None
        # the prompt holds the part's run of placeholders (a second of audio: 25; a page: 64)
        assert completion.usage.prompt_tokens >= without.usage.prompt_tokens + placeholders


AUDIO_VERTEX = f"/v1/{PARENT}/publishers/tuneforge/models/tiny-audio"


@pytest.mark.parametrize("stream", [False, True])
def test_audio_longer_than_the_model_hears_is_refused_naming_the_part(api: Api, stream: bool):
    # Under TUNEFORGE_MAX_AUDIO_SECONDS (600 s) but past tiny-audio's 4 s window: only the
    # model's processor knows, so the refusal comes from the backend, still a 400 of the part.
    nine_seconds = b64(wav_bytes(seconds=9.0, rate=16000))
    part = {"type": "input_audio", "input_audio": {"data": nine_seconds, "format": "wav"}}
    response = api.client.post(
        "/v1/chat/completions",
        json={"model": "tuneforge/tiny-audio", "max_tokens": 2, "stream": stream,
              "messages": [{"role": "user", "content": [part]}]},
        headers=api.headers(),
    )  # fmt: skip
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages[0].content[0].input_audio.data"
    assert error["message"].startswith(f"{error['param']}: ")
    assert "9.0 s" in error["message"] and "4.0 s" in error["message"]

    inline = {"inlineData": {"mimeType": "audio/wav", "data": nine_seconds}}
    for action in ("generateContent", "streamGenerateContent", "countTokens"):
        response = api.client.post(
            f"{AUDIO_VERTEX}:{action}",
            json={"contents": [{"role": "user", "parts": [inline, {"text": "high or low?"}]}]},
            headers=api.headers(),
        )
        assert response.status_code == 400, (action, response.text)
        error = response.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        assert error["message"].startswith("contents[0].parts[0].inlineData: "), error
        assert "9.0 s" in error["message"] and "4.0 s" in error["message"]
