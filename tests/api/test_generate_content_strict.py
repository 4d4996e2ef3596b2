"""generateContent refuses what it would otherwise have to ignore: a migrating user who asks for
JSON, tools or filtering gets a 400 naming the field, in Google's shape, never plain text that
silently lacks it. The answer carries the fields Google's clients read beside the text."""

from __future__ import annotations

import json
from enum import Enum
from typing import Literal

import pytest
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, Field

from tests.api.conftest import Api
from tests.api.test_gemini import finished
from tests.api.test_vertex import PARENT, TEXT, TINY, RecordingBackend, recording, sdk_client
from tuneforge.data.json_schema import openapi_to_json_schema
from tuneforge.models.loading import load_tokenizer

__all__ = ["recording"]  # the fixture, used by name

URL = f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:generateContent"
DEEP: dict = {"type": "STRING"}
for _ in range(600):  # a schema nested past any sensible depth
    DEEP = {"type": "ARRAY", "items": DEEP}


class Mood(Enum):
    WARM = "warm"
    COLD = "cold"


def refused(api: Api, body: dict, url: str = URL) -> dict:
    response = api.client.post(url, json=body, headers=api.headers())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    return error


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
        ({"toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}, "toolConfig"),
        ({"toolConfig": {"retrievalConfig": {"languageCode": "en"}}}, "toolConfig.retrievalConfig"),
        (
            {"tools": [{"functionDeclarations": [{"name": "f"}]}],
             "generationConfig": {"responseMimeType": "application/json"}},
            "generationConfig.responseMimeType",
        ),
        ({"cachedContent": "cachedContents/1"}, "cachedContent"),
        (
            {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT",
                                 "threshold": "BLOCK_LOW_AND_ABOVE"}]},
            "safetySettings",
        ),
        ({"generationConfig": {"responseMimeType": "text/x.enum"}},
         "generationConfig.responseMimeType"),
        ({"generationConfig": {"responseSchema": {"type": "OBJECT"}}},
         "generationConfig.responseSchema"),
        ({"generationConfig": {"responseMimeType": "application/json",
                               "responseSchema": {"type": "NO_SUCH_TYPE"}}},
         "generationConfig.responseSchema"),
        ({"generationConfig": {"logprobs": 3}}, "generationConfig.logprobs"),
        ({"generationConfig": {"presencePenalty": 0.5}}, "generationConfig.presencePenalty"),
        ({"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}},
         "generationConfig.thinkingConfig"),
        ({"generationConfig": {"responseModalities": ["AUDIO"]}},
         "generationConfig.responseModalities"),
    ],
)  # fmt: skip
def test_what_tuneforge_cannot_do_is_refused_naming_the_field(
    api: Api, recording: RecordingBackend, extra: dict, field: str
):
    error = refused(api, {"contents": TEXT, **extra})

    assert error["message"].startswith(f"{field}: ")
    assert recording.calls == []  # refused before any model is asked


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": TEXT, "temprature": 0},
         'Invalid JSON payload received. Unknown name "temprature": Cannot find field.'),
        ({"contents": TEXT, "generationConfig": {"topKk": 3}},
         "Invalid JSON payload received. Unknown name \"topKk\" at 'generationConfig': "
         "Cannot find field."),
    ],
)  # fmt: skip
def test_an_unknown_field_is_refused_as_google_words_it(api: Api, body: dict, message: str):
    assert refused(api, body)["message"] == message


@pytest.mark.parametrize(
    "config",
    [{"temperature": 2.5}, {"topP": 1.5}, {"topK": 0}, {"candidateCount": 9}],
)
def test_values_past_vertexs_ranges_are_refused(api: Api, config: dict):
    field = next(iter(config))
    assert field in refused(api, {"contents": TEXT, "generationConfig": config})["message"]


def test_settings_that_ask_for_nothing_more_are_accepted(api: Api, recording: RecordingBackend):
    body = {
        "contents": TEXT,
        "labels": {"team": "nlp"},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "generationConfig": {
            "responseMimeType": "text/plain",
            "responseModalities": ["TEXT"],
            "presencePenalty": 0,
            "frequencyPenalty": 0,
            "responseLogprobs": False,
        },
    }
    response = api.client.post(URL, json=body, headers=api.headers())
    assert response.status_code == 200, response.text


def test_the_sdk_raises_on_tools_and_a_schema_without_json_mode(
    api: Api, recording: RecordingBackend
):
    client = sdk_client(api, api.key)
    tool = types.Tool(google_search=types.GoogleSearch())
    asks = [
        (types.GenerateContentConfig(response_schema=Review), "generationConfig.responseSchema"),
        (types.GenerateContentConfig(tools=[tool]), "tools[0].googleSearch"),
    ]
    for config, field in asks:
        with pytest.raises(genai_errors.ClientError) as caught:
            client.models.generate_content(model=TINY, contents="hi", config=config)
        assert caught.value.code == 400
        assert caught.value.message.startswith(field)


def test_an_answer_has_an_id_a_time_and_safety_ratings_to_loop_over(api: Api):
    client = sdk_client(api, api.key)
    config = types.GenerateContentConfig(max_output_tokens=2)
    first = client.models.generate_content(model=TINY, contents="hi", config=config)
    second = client.models.generate_content(model=TINY, contents="hi", config=config)

    assert first.response_id and first.response_id != second.response_id
    assert first.create_time is not None
    assert [rating for c in first.candidates for rating in c.safety_ratings] == []

    stream = client.models.generate_content_stream(model=TINY, contents="hi", config=config)
    assert len({chunk.response_id for chunk in stream}) == 1


def test_logprobs_come_with_each_chosen_token_and_the_top_candidates(api: Api, models_dir):
    client = sdk_client(api, api.key)
    config = types.GenerateContentConfig(
        temperature=0, max_output_tokens=4, response_logprobs=True, logprobs=2
    )

    response = client.models.generate_content(model=TINY, contents="hi", config=config)

    candidate = response.candidates[0]
    chosen = candidate.logprobs_result.chosen_candidates
    assert len(chosen) == response.usage_metadata.candidates_token_count
    # The chosen ids are the answer's tokens (their texts alone may split a character).
    tokenizer = load_tokenizer(models_dir / "tiny-chat")
    assert tokenizer.decode([c.token_id for c in chosen]) == response.text
    assert candidate.avg_logprobs == pytest.approx(
        sum(c.log_probability for c in chosen) / len(chosen)
    )
    for step, top in zip(chosen, candidate.logprobs_result.top_candidates, strict=True):
        assert len(top.candidates) == 2
        assert top.candidates[0].token_id == step.token_id  # greedy: the likeliest
    plain = client.models.generate_content(
        model=TINY,
        contents="hi",
        config=types.GenerateContentConfig(temperature=0, max_output_tokens=4),
    )
    assert plain.candidates[0].logprobs_result is None and plain.text == response.text


def test_a_streamed_answer_refuses_logprobs(api: Api):
    client = sdk_client(api, api.key)
    config = types.GenerateContentConfig(response_logprobs=True, max_output_tokens=2)
    with pytest.raises(genai_errors.ClientError) as caught:
        list(client.models.generate_content_stream(model=TINY, contents="hi", config=config))
    assert caught.value.code == 400
    assert caught.value.message.startswith("generationConfig.responseLogprobs")


class Review(BaseModel):
    label: Literal["positive", "negative"]
    stars: int = Field(ge=1, le=5)
    mood: Mood


def test_json_mode_with_a_schema_gives_what_the_sdk_parses(api: Api):
    """google-genai turns a pydantic model into Vertex's schema (types in capitals, a string
    enum, propertyOrdering) and parses the answer back into the model."""
    client = sdk_client(api, api.key)
    for temperature in (0, 1.0):
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=Review,
            temperature=temperature,
            candidate_count=2,
            max_output_tokens=60,
        )
        response = client.models.generate_content(
            model=TINY, contents="review: a warm, funny film ->", config=config
        )
        for candidate in response.candidates:
            Review.model_validate_json(candidate.content.parts[0].text)
        assert isinstance(response.parsed, Review)


def test_a_plain_json_schema_works_too(api: Api):
    schema = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9},
              "minItems": 2, "maxItems": 4}  # fmt: skip
    body = {
        "contents": TEXT,
        "generationConfig": {"responseMimeType": "application/json",
                             "responseJsonSchema": schema, "maxOutputTokens": 30},
    }  # fmt: skip
    response = api.client.post(URL, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    answer = json.loads(response.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert 2 <= len(answer) <= 4 and all(0 <= n <= 9 for n in answer)


def test_vertexs_schema_becomes_json_schema():
    boolean = {"type": "boolean"}
    vertex = {
        "type": "OBJECT",
        "properties": {
            "b": {"type": "STRING", "format": "enum", "enum": ["x", "y"]},
            "a": {"type": "INTEGER", "nullable": True, "minimum": 1},
            "c": {
                "type": "ARRAY",
                "items": {"type": "OBJECT", "properties": {"d": {"type": "BOOLEAN"}}},
            },
        },
        "propertyOrdering": ["a", "b"],
        "required": ["a"],
    }
    assert openapi_to_json_schema(vertex) == {
        "type": "object",
        "properties": {
            "a": {"type": ["integer", "null"], "minimum": 1},
            "b": {"type": "string", "enum": ["x", "y"]},
            "c": {"type": "array", "items": {"type": "object", "properties": {"d": boolean},
                                             "additionalProperties": False}},
        },
        "required": ["a"],
        "additionalProperties": False,
    }  # fmt: skip
    assert list(openapi_to_json_schema(vertex)["properties"]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"safetySettings": [{"threshold": []}]}, "safetySettings"),
        ({"generationConfig": {"responseMimeType": "application/json",
                               "responseSchema": {"type": "ARRAY", "items": DEEP}}},
         "generationConfig.responseSchema"),
        ({"generationConfig": {"responseMimeType": "application/json",
                               "responseJsonSchema": DEEP}}, "generationConfig.responseJsonSchema"),
    ],
)  # fmt: skip
def test_odd_values_are_400s_naming_the_field(api: Api, extra: dict, field: str):
    assert field in refused(api, {"contents": TEXT, **extra})["message"]


def test_the_legacy_sdks_integer_enums_are_understood(api: Api):
    """google-generativeai sends BLOCK_NONE as 4 and OBJECT / STRING as 6 / 1."""
    body = {
        "contents": TEXT,
        "safetySettings": [{"category": 7, "threshold": 4}],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseSchema": {"type": 6, "properties": {"a": {"type": 3, "minimum": 0,
                                                               "maximum": 9}},
                               "required": ["a"], "propertyOrdering": [{}, "a"]},
            "maxOutputTokens": 20,
        },
    }  # fmt: skip
    response = api.client.post(URL, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    answer = json.loads(response.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert list(answer) == ["a"] and 0 <= answer["a"] <= 9
    assert refused(api, {"contents": TEXT, "safetySettings": [{"threshold": 1}]})["message"]


def test_properties_come_in_the_schemas_order(api: Api):
    schema = {"type": "OBJECT", "properties": {"zeta": {"type": "BOOLEAN"},
                                               "alpha": {"type": "BOOLEAN"}},
              "required": ["zeta", "alpha"], "propertyOrdering": ["zeta", "alpha"]}  # fmt: skip
    body = {"contents": TEXT, "generationConfig": {"responseMimeType": "application/json",
                                                   "responseSchema": schema}}  # fmt: skip
    response = api.client.post(URL, json=body, headers=api.headers())
    answer = json.loads(response.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert list(answer) == ["zeta", "alpha"]


def test_the_gemini_api_words_an_unknown_field_as_google_does(api: Api, tmp_path):
    name, _ = finished(api, tmp_path)
    response = api.client.post(
        f"/v1beta/{name}:generateContent",
        json={"contents": TEXT, "temprature": 0},
        headers={"x-goog-api-key": api.key},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == (
        'Invalid JSON payload received. Unknown name "temprature": Cannot find field.'
    )


def test_stop_sequences_are_refused_beside_a_schema(api: Api):
    config = {"responseMimeType": "application/json", "stopSequences": ["}"]}
    error = refused(api, {"contents": TEXT, "generationConfig": config})
    assert error["message"].startswith("generationConfig.stopSequences")
