"""A prompt past the byte limit is refused by its size, at once, on every surface that
generates, before any model is loaded or asked to tokenize it; one within it but longer than
the model's context is refused with its token count and the model's limit."""

from __future__ import annotations

import time

import pytest

from tests.api.conftest import Api
from tests.api.test_ui import form_token, sign_in
from tests.api.test_vertex import RecordingBackend
from tuneforge.config import Settings
from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import prompt_ids
from tuneforge.models.loading import load_tokenizer

TINY = "tuneforge/tiny-chat"
VERTEX_MODEL = "/v1/projects/p/locations/l/publishers/tuneforge/models/tiny-chat:generateContent"
TEN_MB = 10 * 1000 * 1000
DEFAULT_LIMIT = Settings.model_fields["max_prompt_bytes"].default


class UntouchableBackend:
    """Fails the test if the service hands it the prompt at all."""

    def generate(self, target, prompt, params):
        raise AssertionError("the backend was asked to read an oversized prompt")

    stream = generate


@pytest.fixture
def untouchable(api: Api, monkeypatch) -> None:
    monkeypatch.setattr(api.service.generation, "_backend", UntouchableBackend())


def openai_chat(api: Api, text: str, **extra):
    body = {"model": TINY, "messages": [{"role": "user", "content": text}], **extra}
    return api.client.post("/v1/chat/completions", json=body, headers=api.headers())


def vertex_generate(api: Api, text: str, system: str | None = None):
    body: dict = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if system is not None:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    return api.client.post(VERTEX_MODEL, json=body, headers=api.headers())


def assert_refused_quickly(response, started: float) -> None:
    assert time.perf_counter() - started < 5, "refused only after reading the prompt"
    assert response.status_code == 400, response.text
    assert f"at most {DEFAULT_LIMIT:,}" in response.text
    assert "TUNEFORGE_MAX_PROMPT_BYTES" in response.text


@pytest.mark.parametrize("stream", [False, True])
def test_openai_refuses_a_ten_megabyte_prompt_by_its_size(api: Api, untouchable, stream: bool):
    started = time.perf_counter()

    response = openai_chat(api, "x" * TEN_MB, stream=stream)

    assert_refused_quickly(response, started)
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages")
    assert f"{TEN_MB:,} bytes" in error["message"]


def test_vertex_refuses_a_ten_megabyte_prompt_by_its_size(api: Api, untouchable):
    started = time.perf_counter()

    response = vertex_generate(api, "x" * TEN_MB)

    assert_refused_quickly(response, started)
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_the_dashboard_shows_why_a_prompt_is_refused(api: Api, monkeypatch, untouchable):
    monkeypatch.setattr(api.service.settings, "max_prompt_bytes", 100)
    sign_in(api)
    token = form_token(api, f"/ui/models/{TINY}")

    response = api.client.post(
        f"/ui/models/{TINY}", data={"prompt": "x" * 101, "csrf_token": token}
    )

    assert response.status_code == 400
    assert "101 bytes of text; this server reads at most 100" in response.text
    started = time.perf_counter()
    huge = api.client.post(f"/ui/models/{TINY}", data={"prompt": "x" * TEN_MB, "csrf_token": token})
    assert time.perf_counter() - started < 5
    assert huge.status_code == 400 and huge.headers["content-type"].startswith("text/html")


def test_the_limit_counts_bytes_of_every_part_and_is_a_setting(api: Api, monkeypatch):
    monkeypatch.setattr(api.service.settings, "max_prompt_bytes", 100)
    recording = RecordingBackend([])
    monkeypatch.setattr(api.service.generation, "_backend", recording)

    assert openai_chat(api, "é" * 50).status_code == 200  # 50 characters, 100 bytes: the limit
    refused = openai_chat(api, "é" * 51)  # 51 characters, 102 bytes
    assert refused.status_code == 400
    assert "102 bytes" in refused.text and "at most 100 " in refused.text
    # the system instruction counts too
    assert vertex_generate(api, "x" * 60, system="y" * 40).status_code == 200
    assert vertex_generate(api, "x" * 60, system="y" * 41).status_code == 400
    # and so do the declared functions
    tool = {"type": "function", "function": {"name": "f", "description": "z" * 100}}
    refused = openai_chat(api, "x", tools=[tool])
    assert refused.status_code == 400 and "bytes" in refused.json()["error"]["message"]
    assert len(recording.calls) == 2  # only the prompts within the limit reached the model


OVER_CONTEXT = " ".join(f"word{i % 50}" for i in range(600))  # about 600 words


def over_context_message(models_dir) -> str:
    tokenizer = load_tokenizer(models_dir / "tiny-chat")
    tokens = len(prompt_ids(Conversation((Turn("user", OVER_CONTEXT),)), tokenizer))
    assert tokens > 512
    return f"the prompt has {tokens} tokens; the model reads at most 512"


@pytest.mark.parametrize("stream", [False, True])
def test_openai_refuses_a_prompt_longer_than_the_models_context(api: Api, models_dir, stream):
    response = openai_chat(api, OVER_CONTEXT, stream=stream)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages")
    assert over_context_message(models_dir) in error["message"]


def test_vertex_refuses_a_prompt_longer_than_the_models_context(api: Api, models_dir):
    response = vertex_generate(api, OVER_CONTEXT)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert over_context_message(models_dir) in error["message"]
