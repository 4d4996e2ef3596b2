"""POST /v1/chat/completions on a base model: OpenAI's response shape, usage, stop, n,
max_tokens, streaming as server-sent events, and errors."""

from __future__ import annotations

import json

import jsonschema
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.api.test_models_api import TINY, fine_tuned_name, register_tuned_model

CHAT = "/v1/chat/completions"
HELLO = [
    {"role": "developer", "content": "Answer briefly."},
    {"role": "user", "content": [{"type": "text", "text": "hello"}]},
]


def chat(api, **body) -> ChatCompletion:
    response = api.client.post(
        CHAT, json={"model": TINY, "messages": HELLO, **body}, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    return ChatCompletion.model_validate(response.json())


def refused(api, status: int = 400, **body) -> dict:
    response = api.client.post(CHAT, json={"model": TINY, **body}, headers=api.headers())
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_a_completion_in_openais_shape_with_usage(api):
    completion = chat(api, temperature=0, max_tokens=6)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == TINY
    [choice] = completion.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content
    usage = completion.usage
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 6
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_max_tokens_ends_with_length_and_max_completion_tokens_wins(api):
    completion = chat(api, temperature=0, max_tokens=1)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 1

    newer = chat(api, temperature=0, max_tokens=5, max_completion_tokens=2)
    assert newer.usage.completion_tokens == 2


def test_stop_cuts_the_text_before_the_stop_sequence(api):
    full = chat(api, temperature=0, max_tokens=16).choices[0].message.content
    stop = full[4:6]
    assert len(stop) == 2

    stopped = chat(api, temperature=0, max_tokens=16, stop=[stop, "never-seen"]).choices[0]

    assert stopped.message.content == full[: full.index(stop)]
    assert stopped.finish_reason == "stop"


def test_n_gives_that_many_choices(api):
    completion = chat(api, temperature=1.0, seed=3, n=3, max_tokens=4)

    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    assert 0 < completion.usage.completion_tokens <= 3 * 4


def test_a_stream_is_server_sent_chunks_ending_with_done(api):
    expected = chat(api, temperature=0, max_tokens=8).choices[0].message.content
    body = {"model": TINY, "messages": HELLO, "temperature": 0, "max_tokens": 8, "stream": True}

    response = api.client.post(CHAT, json=body, headers=api.headers())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(e[6:])) for e in events[:-1]]
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == expected
    assert chunks[-1].choices[0].finish_reason is not None


def test_a_stream_of_several_choices_is_refused(api):
    error = refused(api, messages=HELLO, stream=True, n=2)

    assert error["param"] == "n"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            "messages[1]",
        ),
        ([{"role": "tool", "content": "42"}], "messages[0].tool_call_id"),
        ([], "messages"),
    ],
)
def test_bad_messages_are_refused_naming_the_message(api, messages, param):
    error = refused(api, messages=messages)

    assert error["param"] == param
    assert error["message"].startswith(param)
    assert error["type"] == "invalid_request_error"


def test_bad_parameters_are_refused_in_openais_names(api):
    assert refused(api, messages=HELLO, max_tokens=0)["param"] == "max_tokens"
    assert refused(api, messages=HELLO, max_completion_tokens=0)["param"] == "max_completion_tokens"
    assert refused(api, messages=HELLO, temperature=-1)["param"] == "temperature"
    assert refused(api, messages=HELLO, seed=2**70, temperature=1)["param"] == "seed"
    assert refused(api)["param"] == "messages"  # missing


def test_unknown_and_other_projects_models_are_not_found(api, tmp_path):
    theirs = register_tuned_model(api.service, "other", tmp_path)

    for model in ("no-such-model", fine_tuned_name(theirs)):
        error = refused(api, 404, model=model, messages=HELLO)
        assert error["code"] == "model_not_found"
        assert error["param"] == "model"
        assert model in error["message"]


@pytest.mark.parametrize(("given", "temperature"), [({}, 1.0), ({"temperature": 0}, 0.0)])
def test_completions_sample_unless_told_otherwise(api, monkeypatch, given, temperature):
    seen = []
    generate = api.service.generation.generate

    def recording(project, model, prompt, params):
        seen.append(params)
        return generate(project, model, prompt, params)

    monkeypatch.setattr(api.service.generation, "generate", recording)
    chat(api, max_tokens=2, **given)
    assert seen[0].temperature == temperature


def stream_chunks(api, **body) -> list[dict]:
    body = {"model": TINY, "messages": HELLO, "stream": True, **body}
    response = api.client.post(CHAT, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    return [json.loads(event[6:]) for event in events[:-1]]


def test_a_stream_cut_by_max_tokens_finishes_with_length_and_reports_usage(api):
    whole = chat(api, temperature=0, max_tokens=1)
    chunks = stream_chunks(api, temperature=0, max_tokens=1, stream_options={"include_usage": True})
    *text_chunks, usage = chunks
    assert text_chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == []
    expected = {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["usage"] == whole.usage.model_dump(include=expected)
    assert [c["choices"][0]["finish_reason"] for c in text_chunks].count("length") == 1


def test_a_stream_has_no_usage_unless_asked(api):
    chunks = stream_chunks(api, temperature=0, max_tokens=2)
    assert all("usage" not in chunk for chunk in chunks)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
        ({"top_logprobs": 3}, "top_logprobs"),  # without logprobs: true
        ({"logprobs": True, "stream": True}, "logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -1}, "presence_penalty"),
        ({"store": True}, "store"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
    ],
)
def test_what_tuneforge_cannot_do_is_refused_naming_the_parameter(api, extra, param):
    """Never silently ignored: a migrating user would get plain text where they asked for a tool
    call or JSON, and not know why."""
    error = refused(api, messages=HELLO, **extra)

    assert (error["param"], error["code"]) == (param, "unsupported_parameter")
    assert error["message"].startswith(f"{param}: ")


def test_an_unknown_parameter_is_refused_as_openai_words_it(api):
    error = refused(api, messages=HELLO, temprature=0)

    assert error["param"] == "temprature"
    assert error["message"] == "Unrecognized request argument supplied: temprature"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
    ],
)
def test_values_past_openais_ranges_are_refused(api, extra, param):
    assert refused(api, messages=HELLO, **extra)["param"] == param


def test_parameters_that_change_nothing_are_accepted(api):
    """What the openai SDK's users commonly send and that asks for nothing tuneforge lacks."""
    completion = chat(
        api,
        max_tokens=2,
        user="u-1",
        metadata={"team": "nlp"},
        store=False,
        frequency_penalty=0,
        presence_penalty=0,
        logprobs=False,
        tool_choice="none",
        parallel_tool_calls=False,
        response_format={"type": "text"},
        modalities=["text"],
        service_tier="auto",
    )
    assert completion.choices[0].message.content is not None


def test_logprobs_come_with_each_token_and_its_likeliest_alternatives(api):
    completion = chat(api, temperature=0, max_tokens=4, logprobs=True, top_logprobs=2)

    choice = completion.choices[0]
    tokens = choice.logprobs.content
    assert len(tokens) == completion.usage.completion_tokens
    # A token may be part of a multibyte character: its bytes, joined, spell the answer.
    joined = b"".join(bytes(token.bytes) for token in tokens)
    assert joined.decode(errors="replace") == choice.message.content
    for token in tokens:
        assert token.logprob <= 0
        assert len(token.top_logprobs) == 2
        assert token.top_logprobs[0].token == token.token  # greedy: the likeliest
        assert token.top_logprobs[0].logprob >= token.top_logprobs[1].logprob
    without = chat(api, temperature=0, max_tokens=4)
    assert without.choices[0].logprobs is None
    assert without.choices[0].message.content == choice.message.content
    only_chosen = chat(api, temperature=0, max_tokens=4, logprobs=True).choices[0].logprobs
    assert [t.top_logprobs for t in only_chosen.content] == [[]] * len(tokens)


REVIEW = {
    "type": "object",
    "properties": {
        "label": {"enum": ["positive", "negative"]},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["label", "stars"],
    "additionalProperties": False,
}


def test_a_json_schema_response_format_answers_json_that_matches_it(api):
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "review", "schema": REVIEW, "strict": True},
    }
    for temperature in (0, 1.2):
        completion = chat(
            api, n=3, max_tokens=60, temperature=temperature, response_format=response_format
        )
        for choice in completion.choices:
            jsonschema.validate(json.loads(choice.message.content), REVIEW)

    any_object = chat(api, max_tokens=200, response_format={"type": "json_object"})
    if any_object.choices[0].finish_reason == "stop":  # a random model may run out of tokens
        assert isinstance(json.loads(any_object.choices[0].message.content), dict)
    assert any_object.choices[0].message.content.startswith("{")


SCHEMA_PARAM = "response_format.json_schema.schema"


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x"}}, SCHEMA_PARAM),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such"}}},
         SCHEMA_PARAM),
        ({"type": "xml"}, "response_format.type"),
    ],
)  # fmt: skip
def test_a_bad_response_format_is_refused_naming_what_to_fix(api, response_format, param):
    error = refused(api, messages=HELLO, response_format=response_format)
    assert error["param"] == param
    assert error["message"].startswith(f"{param}: ")
