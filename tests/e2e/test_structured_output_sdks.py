"""End to end: a real ``tuneforge serve`` and the unmodified ``openai`` and ``google-genai``
SDKs ask a tuned model for structured output, log probabilities and token counts, and get a
400 naming each parameter tuneforge does not implement."""

from __future__ import annotations

import json
from typing import Literal

import google.genai.errors
import jsonschema
import openai
import pytest
from google.genai import types
from openai import OpenAI
from pydantic import BaseModel, Field

from tests.api.test_chat_completions import REVIEW
from tests.e2e.test_openai_responses_sdk import PROMPT, tuned_model

__all__ = ["tuned_model"]  # the fixture, used by name
pytestmark = pytest.mark.slow


class Review(BaseModel):
    label: Literal["positive", "negative"]
    stars: int = Field(ge=1, le=5)


def test_openai_sdk_json_schema_logprobs_and_refusals(live_server, tuned_model):
    client = OpenAI(base_url=live_server.url + "/v1", api_key=live_server.key, max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]

    completion = client.chat.completions.create(
        model=tuned_model,
        messages=messages,
        n=4,
        temperature=1.0,
        max_tokens=40,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "review", "schema": REVIEW, "strict": True}},
    )  # fmt: skip
    for choice in completion.choices:
        jsonschema.validate(json.loads(choice.message.content), REVIEW)
    parsed = client.chat.completions.parse(
        model=tuned_model, messages=messages, max_tokens=40, response_format=Review
    )
    assert isinstance(parsed.choices[0].message.parsed, Review)

    scored = client.chat.completions.create(
        model=tuned_model, messages=messages, temperature=0, max_tokens=5, logprobs=True,
        top_logprobs=3,
    )  # fmt: skip
    tokens = scored.choices[0].logprobs.content
    joined = b"".join(bytes(t.bytes) for t in tokens)  # a character may span tokens
    assert joined.decode(errors="replace") == scored.choices[0].message.content
    assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in tokens)

    for extra in ({"functions": [{"name": "f"}]}, {"logit_bias": {"1": 5}},
                  {"frobnicate": 1}):  # fmt: skip
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=tuned_model, messages=messages, max_tokens=2, extra_body=extra
            )
        assert caught.value.body["param"] == next(iter(extra))


def test_google_genai_json_mode_counts_and_refusals(live_server):
    client = live_server.vertex_client("p", "us-central1")
    model = "tuneforge/tiny-chat"

    response = client.models.generate_content(
        model=model,
        contents=PROMPT,
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Review, max_output_tokens=40
        ),
    )
    assert isinstance(response.parsed, Review)

    counted = client.models.count_tokens(model=model, contents=PROMPT)
    answered = client.models.generate_content(
        model=model, contents=PROMPT, config=types.GenerateContentConfig(max_output_tokens=1)
    )
    assert counted.total_tokens == answered.usage_metadata.prompt_token_count

    search = types.Tool(google_search=types.GoogleSearch())
    with pytest.raises(google.genai.errors.ClientError) as caught:
        client.models.generate_content(
            model=model, contents=PROMPT, config=types.GenerateContentConfig(tools=[search])
        )
    assert caught.value.code == 400 and caught.value.message.startswith("tools[0].googleSearch:")
