"""POST /v1/responses: OpenAI's Responses API on base and tuned models, its response object
and streamed events as the ``openai`` SDK's types read them, and the requests it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.api.conftest import Api
from tests.api.test_models_api import TINY, fine_tuned_name, register_tuned_model
from tests.helpers import random_lora_adapter
from tuneforge.models.tiny import ensure_tiny_model

RESPONSES = "/v1/responses"
STREAM_EVENT = TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="module")
def adapter(models_dir, tmp_path_factory) -> Path:
    base = ensure_tiny_model(TINY, models_dir)
    return random_lora_adapter(base, tmp_path_factory.mktemp("tuned") / "adapter")


def respond(api: Api, **body) -> Response:
    response = api.client.post(RESPONSES, json={"model": TINY, **body}, headers=api.headers())
    assert response.status_code == 200, response.text
    return Response.model_validate(response.json())


def chat(api: Api, messages: list[dict], **body) -> ChatCompletion:
    body = {"model": TINY, "messages": messages, **body}
    response = api.client.post("/v1/chat/completions", json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    return ChatCompletion.model_validate(response.json())


def refused(api: Api, status: int = 400, **body) -> dict:
    response = api.client.post(RESPONSES, json={"model": TINY, **body}, headers=api.headers())
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] in ("invalid_request_error", "not_found_error")
    return error


def stream_events(api: Api, **body) -> list:
    body = {"model": TINY, "stream": True, **body}
    response = api.client.post(RESPONSES, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        if block:
            name, data = block.split("\n")
            event = STREAM_EVENT.validate_python(json.loads(data.removeprefix("data: ")))
            assert name == f"event: {event.type}"
            events.append(event)
    return events


def test_a_string_input_answers_as_chat_completions_does_in_openais_shape(api: Api):
    response = respond(api, input="hello", temperature=0, max_output_tokens=8)
    completion = chat(api, [{"role": "user", "content": "hello"}], temperature=0, max_tokens=8)

    assert response.id.startswith("resp_")
    assert (response.object, response.model) == ("response", TINY)
    assert response.created_at > 0
    [message] = response.output
    assert (message.type, message.role) == ("message", "assistant")
    assert message.id.startswith("msg_")
    assert [part.type for part in message.content] == ["output_text"]
    assert response.output_text == completion.choices[0].message.content
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    finished = completion.choices[0].finish_reason
    assert response.status == ("incomplete" if finished == "length" else "completed")


def test_messages_and_instructions_make_the_chat_prompt(api: Api):
    messages = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "message", "role": "assistant", "status": "completed", "id": "msg_1",
         "content": [{"type": "output_text", "text": "hello", "annotations": []}]},
        {"role": "user", "content": "name a fruit"},
    ]  # fmt: skip
    response = respond(
        api, input=messages, instructions="Be kind.", temperature=0, max_output_tokens=6
    )
    expected = chat(
        api,
        [
            {"role": "system", "content": "Be kind.\n\nAnswer briefly."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "name a fruit"},
        ],
        temperature=0,
        max_tokens=6,
    )
    assert response.output_text == expected.choices[0].message.content
    assert response.instructions == "Be kind."
    assert response.usage.input_tokens == expected.usage.prompt_tokens


def test_max_output_tokens_ends_an_incomplete_response(api: Api):
    response = respond(api, input="hello", temperature=0, max_output_tokens=1)

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert response.usage.output_tokens == 1
    assert response.max_output_tokens == 1


@pytest.mark.parametrize(
    ("given", "temperature", "top_p"),
    [
        ({}, 1.0, 1.0),
        ({"temperature": 0}, 0.0, 1.0),
        ({"temperature": 0.7, "top_p": 0.5}, 0.7, 0.5),
    ],
)
def test_sampling_parameters_reach_the_model(api: Api, monkeypatch, given, temperature, top_p):
    seen = []
    generate = api.service.generation.generate

    def recording(project, model, prompt, params):
        seen.append(params)
        return generate(project, model, prompt, params)

    monkeypatch.setattr(api.service.generation, "generate", recording)
    response = respond(api, input="hello", max_output_tokens=2, **given)

    assert (seen[0].temperature, seen[0].top_p) == (temperature, top_p)
    assert (response.temperature, response.top_p) == (temperature, top_p)


def test_a_tuned_model_answers_as_its_chat_completions_do(api: Api, adapter: Path):
    job = register_tuned_model(api.service, "default", adapter, suffix="mine")
    model = fine_tuned_name(job)

    response = respond(api, model=model, input="hello", temperature=0, max_output_tokens=8)
    tuned = chat(api, [{"role": "user", "content": "hello"}], model=model, temperature=0,
                 max_tokens=8)  # fmt: skip
    base = respond(api, input="hello", temperature=0, max_output_tokens=8)

    assert response.model == model
    assert response.output_text == tuned.choices[0].message.content
    assert response.output_text != base.output_text


def test_a_stream_is_openais_event_sequence(api: Api):
    whole = respond(api, input="hello", temperature=0, max_output_tokens=8)
    events = stream_events(api, input="hello", temperature=0, max_output_tokens=8)

    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert deltas
    kinds = [e.type for e in events]
    final = f"response.{whole.status}"
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(deltas),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        final,
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    created, last = events[0].response, events[-1].response
    assert created.status == "in_progress" and created.output == []
    assert created.id == last.id and created.id.startswith("resp_")
    item_id = events[2].item.id
    assert {e.item_id for e in events[3:-2]} == {item_id}
    text = "".join(e.delta for e in deltas)
    assert text == whole.output_text == events[-4].text == events[-3].part.text
    assert last.output_text == text
    assert last.output[0].id == item_id
    assert last.usage == whole.usage
    assert last.status == whole.status


def test_a_stream_cut_by_max_output_tokens_ends_incomplete(api: Api):
    events = stream_events(api, input="hello", temperature=0, max_output_tokens=1)

    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-2].item.status == "incomplete"
    assert events[-1].response.usage.output_tokens == 1


def test_harmless_parameters_are_accepted_and_shown(api: Api):
    response = respond(
        api,
        input="hello",
        max_output_tokens=2,
        metadata={"team": "nlp"},
        user="u-1",
        store=False,
        parallel_tool_calls=False,
        tools=[],
        tool_choice="none",
        text={"format": {"type": "text"}},
        truncation="disabled",
        stream_options={"include_obfuscation": False},
    )

    assert response.metadata == {"team": "nlp"}
    assert (response.user, response.store, response.parallel_tool_calls) == ("u-1", False, False)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "name": "f", "parameters": {}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"background": True}, "background"),
        ({"reasoning": {"effort": "high"}}, "reasoning"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"include": ["message.output_text.logprobs"], "stream": True}, "include"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ],
)
def test_what_tuneforge_cannot_do_is_refused_naming_the_parameter(api: Api, extra, param):
    error = refused(api, input="hello", **extra)

    assert error["param"] == param
    assert error["message"].startswith(f"{param}: ")


def test_an_unknown_parameter_is_refused_as_openai_words_it(api: Api):
    error = refused(api, input="hello", modalities=["audio"])  # the Responses API has none

    assert error["param"] == "modalities"
    assert error["message"] == "Unrecognized request argument supplied: modalities"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"input": 5}, "input"),
        ({"input": None}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["hello"]}, "input[0]"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "4"}]},
         "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input[0].content[0].type"),
        ({"input": [{"role": "tool", "content": "4"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
         "input[1]"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "max_output_tokens": 10**12}, "max_output_tokens"),
        ({"input": "hi", "temperature": 2.5}, "temperature"),
        ({"input": "hi", "temperature": -1}, "temperature"),
        ({"input": "hi", "top_p": 0}, "top_p"),
        ({"input": "hi", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"input": "hi", "metadata": {"k": "v" * 513}}, "metadata"),
        ({"input": "hi", "model": "m" * 10_000}, "model"),
        ({"input": "hi", "instructions": 7}, "instructions"),
    ],
)  # fmt: skip
def test_bad_input_and_values_past_their_limits_are_refused(api: Api, extra, param):
    error = refused(api, **extra)

    assert error["param"] == param
    assert error["message"].startswith(f"{param}: ")


def test_a_prompt_longer_than_the_model_reads_is_refused_naming_input(api: Api):
    error = refused(api, input="word " * 5000)

    assert error["param"] == "input"
    assert "tokens" in error["message"]


def test_unknown_and_other_projects_models_are_not_found_alike(api: Api, adapter: Path):
    theirs = fine_tuned_name(register_tuned_model(api.service, "other", adapter))
    missing = theirs.rsplit(":", 1)[0] + ":tj-000000000000"

    errors = [refused(api, 404, model=model, input="hi") for model in (theirs, missing)]
    for model, error in zip((theirs, missing), errors, strict=True):
        assert (error["code"], error["param"]) == ("model_not_found", "model")
        assert model in error["message"]
    assert errors[0]["message"].replace(theirs, "M") == errors[1]["message"].replace(missing, "M")
    assert refused(api, 404, model="no-such-model", input="hi")["code"] == "model_not_found"
    streamed = refused(api, 404, model=theirs, input="hi", stream=True)
    assert streamed["message"] == errors[0]["message"]


def test_responses_need_a_key(api: Api):
    response = api.client.post(RESPONSES, json={"model": TINY, "input": "hi"})

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_json_schema_format_answers_json_that_matches_it(api: Api):
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["positive", "negative"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    text_format = {"type": "json_schema", "name": "review", "schema": schema, "strict": True}

    response = respond(api, input="review: fun ->", max_output_tokens=40,
                       text={"format": text_format})  # fmt: skip

    assert json.loads(response.output_text)["label"] in ("positive", "negative")
    assert response.text.format.type == "json_schema"


def test_logprobs_come_with_the_output_text_when_included(api: Api):
    response = respond(api, input="review: fun ->", temperature=0, max_output_tokens=4,
                       include=["message.output_text.logprobs"], top_logprobs=2)  # fmt: skip

    [part] = response.output[0].content
    assert len(part.logprobs) == response.usage.output_tokens
    joined = b"".join(bytes(token.bytes) for token in part.logprobs)
    assert joined.decode(errors="replace") == part.text
    assert all(len(token.top_logprobs) == 2 for token in part.logprobs)
    assert all(token.top_logprobs[0].token == token.token for token in part.logprobs)  # greedy
    plain = respond(api, input="review: fun ->", temperature=0, max_output_tokens=4)
    assert plain.output[0].content[0].logprobs == []
