"""Vertex's countTokens and computeTokens, through the unmodified google-genai SDK: the count is
what generateContent's usageMetadata reports for the same prompt, on base and tuned models."""

from __future__ import annotations

import base64

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from tests.api.conftest import Api
from tests.api.test_models_api import register_tuned_model
from tests.api.test_vertex import PARENT, TINY, sdk_client
from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import prompt_ids
from tuneforge.models.loading import load_tokenizer

SYSTEM = "Classify the review."
CONTENTS = [
    types.Content(role="user", parts=[types.Part(text="review: dull film ->")]),
    types.Content(role="model", parts=[types.Part(text="negative")]),
    types.Content(role="user", parts=[types.Part(text="review: great fun ->")]),
]


def test_the_count_is_the_prompt_token_count_of_an_answer(api: Api):
    client = sdk_client(api, api.key)
    config = types.GenerateContentConfig(system_instruction=SYSTEM)

    counted = client.models.count_tokens(model=TINY, contents=CONTENTS, config=config)
    answer = client.models.generate_content(
        model=TINY,
        contents=CONTENTS,
        config=types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=1),
    )

    assert counted.total_tokens == answer.usage_metadata.prompt_token_count > 0


def test_compute_tokens_lists_each_contents_tokens(api: Api, models_dir):
    client = sdk_client(api, api.key)

    computed = client.models.compute_tokens(model=TINY, contents=CONTENTS)

    assert [info.role for info in computed.tokens_info] == ["user", "model", "user"]
    ids = [int(i) for info in computed.tokens_info for i in info.token_ids]
    tokenizer = load_tokenizer(models_dir / "tiny-chat")
    prompt = Conversation(
        turns=(Turn("user", "review: dull film ->"), Turn("model", "negative"),
               Turn("user", "review: great fun ->"))
    )  # fmt: skip
    assert ids == prompt_ids(prompt, tokenizer)
    # Each token's bytes, in order, spell the prompt as the model reads it.
    text = b"".join(piece for info in computed.tokens_info for piece in info.tokens).decode()
    assert text == tokenizer.decode(ids)
    # A content's tokens run through its closing markup; the generation prompt ends the last.
    assert b"".join(computed.tokens_info[1].tokens).decode().endswith("negative<|im_end|>\n")
    assert b"".join(computed.tokens_info[2].tokens).decode().endswith("assistant\n")


def test_a_tuned_model_counts_on_its_endpoint_and_another_projects_is_not_found(
    api: Api, tmp_path, sentiment
):
    mine = register_tuned_model(api.service, "default", tmp_path)
    theirs = register_tuned_model(api.service, "other", tmp_path)
    body = {"contents": [{"role": "user", "parts": [{"text": "review: fun ->"}]}]}

    response = api.client.post(
        f"/v1/{PARENT}/endpoints/{mine.id}:countTokens", json=body, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["totalTokens"] > 0
    assert response.json()["promptTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": response.json()["totalTokens"]}
    ]
    for resource in (f"endpoints/{theirs.id}", "publishers/google/models/no-such-model"):
        response = api.client.post(
            f"/v1/{PARENT}/{resource}:computeTokens", json=body, headers=api.headers()
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize("method", ["countTokens", "computeTokens"])
def test_bad_requests_are_refused_as_generate_content_refuses_them(api: Api, method: str):
    url = f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:{method}"
    for body, fragment in [
        ({"contents": []}, "contents"),
        ({"contents": [{"role": "model", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": [{"text": "x"}]}], "tools": [{}]}, "tools"),
    ]:
        response = api.client.post(url, json=body, headers=api.headers())
        assert response.status_code == 400, response.text
        assert fragment in response.json()["error"]["message"]


def test_the_sdk_raises_on_an_unknown_model(api: Api):
    client = sdk_client(api, api.key)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.count_tokens(model="no-such-model", contents="hi")
    assert caught.value.code == 404


def test_tokens_are_base64_on_the_wire(api: Api):
    response = api.client.post(
        f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:computeTokens",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        headers=api.headers(),
    )
    info = response.json()["tokensInfo"][0]
    assert all(isinstance(i, str) and i.isdigit() for i in info["tokenIds"])
    assert b"hi" in b"".join(base64.b64decode(token) for token in info["tokens"])


def test_contents_ending_with_the_model_are_counted(api: Api):
    """Vertex counts any contents; only generation needs a user turn last."""
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]},
                         {"role": "model", "parts": [{"text": "ok"}]}]}  # fmt: skip
    response = api.client.post(
        f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:countTokens",
        json=body, headers=api.headers(),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["totalTokens"] > 0


@pytest.mark.parametrize("model", ["tuneforge/tiny-vision", "tuneforge/tiny-audio"])
def test_media_count_as_the_tokens_they_expand_to_in_counts_and_answers(api: Api, model):
    import random

    from tuneforge.data.media_samples import colour_image, tone_wav

    rng = random.Random(0)
    data, mime = (
        (colour_image(rng, "red"), "image/png")
        if model.endswith("vision")
        else (tone_wav(rng, "low"), "audio/wav")
    )
    client = sdk_client(api, api.key)
    contents = [
        types.Content(role="user", parts=[types.Part(text="hello")]),
        types.Content(role="model", parts=[types.Part(text="hi")]),
        types.Content(
            role="user",
            parts=[types.Part.from_bytes(data=data, mime_type=mime), types.Part(text="which?")],
        ),
    ]
    counted = client.models.count_tokens(model=model, contents=contents)
    answer = client.models.generate_content(
        model=model, contents=contents, config=types.GenerateContentConfig(max_output_tokens=1)
    )
    assert counted.total_tokens == answer.usage_metadata.prompt_token_count
    computed = client.models.compute_tokens(model=model, contents=contents)
    per_turn = [len(info.token_ids) for info in computed.tokens_info]
    assert sum(per_turn) == counted.total_tokens
    assert per_turn[2] > 20  # the media's expanded run is in the last turn's tokens
