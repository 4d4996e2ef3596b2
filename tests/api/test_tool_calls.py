"""Function calling on both surfaces, on the untuned tiny model: a required or named call always
names an allowed function with arguments that match its schema (a grammar holds it there),
"none" hides the tools, earlier calls and their results are read from the conversation, and
every mistake is a 400 naming its field."""

from __future__ import annotations

import json

import jsonschema
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.api.conftest import Api
from tests.api.test_chat_completions import CHAT, refused
from tests.api.test_models_api import TINY
from tests.api.test_vertex import PARENT

GENERATE = f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:generateContent"
STREAM = f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:streamGenerateContent?alt=sse"
COUNT = f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:countTokens"
# Bounded arguments: a random model would fill a free string until its budget ran out.
FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"enum": ["paris", "rome"]},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    {
        "name": "get_time",
        "description": "Time in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["paris", "rome"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
]
TOOLS = [{"type": "function", "function": f} for f in FUNCTIONS]
SCHEMAS = {f["name"]: f["parameters"] for f in FUNCTIONS}
ASK = [{"role": "user", "content": "weather in paris?"}]


def chat(api: Api, **body) -> ChatCompletion:
    body = {"model": TINY, "messages": ASK, "tools": TOOLS, "max_tokens": 200, **body}
    response = api.client.post(CHAT, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    return ChatCompletion.model_validate(response.json())


def check_calls(choice, allowed: set[str]) -> None:
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls, choice.message
    for call in choice.message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in allowed
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_a_required_call_always_names_a_tool_with_arguments_that_match(api: Api):
    completion = chat(
        api, tool_choice="required", parallel_tool_calls=False, temperature=1.0, n=6, seed=0
    )

    for choice in completion.choices:
        check_calls(choice, {"get_weather", "get_time"})
        assert choice.message.content is None


def test_a_named_function_is_the_one_called_once_without_parallel_calls(api: Api):
    named = {"type": "function", "function": {"name": "get_time"}}
    completion = chat(api, tool_choice=named, parallel_tool_calls=False, temperature=0)

    for choice in completion.choices:
        check_calls(choice, {"get_time"})
        assert len(choice.message.tool_calls) == 1


def test_with_auto_a_model_that_writes_no_call_answers_in_text(api: Api):
    """The untuned model has never seen a call: its text comes back as text."""
    completion = chat(api, temperature=0, max_tokens=12)

    [choice] = completion.choices
    assert choice.message.tool_calls is None and choice.message.content
    assert choice.finish_reason in ("stop", "length")


def test_none_hides_the_tools_from_the_model(api: Api):
    shown = chat(api, temperature=0, max_tokens=1).usage.prompt_tokens
    hidden = chat(api, temperature=0, max_tokens=1, tool_choice="none").usage.prompt_tokens
    plain = chat(api, temperature=0, max_tokens=1, tools=None).usage.prompt_tokens

    assert hidden == plain < shown


def test_earlier_calls_and_their_results_are_read_from_the_conversation(api: Api):
    call = {"id": "call_7", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "paris"}'}}  # fmt: skip
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_7", "content": '{"temperature": 21}'},
    ]
    answered = chat(api, messages=history, temperature=0, max_tokens=4)
    assert answered.usage.prompt_tokens > chat(api, max_tokens=1).usage.prompt_tokens

    wrong_id = [*history[:2], {**history[2], "tool_call_id": "call_8"}]
    error = refused(api, messages=wrong_id, tools=TOOLS)
    assert error["param"] == "messages[2].tool_call_id"
    lima = {**call, "function": {"name": "get_weather", "arguments": '{"city": "lima"}'}}
    bad_arguments = [*ASK, {"role": "assistant", "tool_calls": [lima]}]
    bad_arguments.append({"role": "tool", "tool_call_id": "call_7", "content": "x"})
    error = refused(api, messages=bad_arguments, tools=TOOLS)
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"
    assert "'lima' is not one of ['paris', 'rome']" in error["message"]


@pytest.mark.parametrize(
    ("body", "param", "phrase"),
    [
        ({"tool_choice": "required"}, "tool_choice", "needs tools"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "tool_choice", "'nope' is not one of the tools"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice", "expected"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]},
         "tools[0].function.name", "expected a function name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 1}}}]},
         "tools[0].function.parameters", "not a JSON schema"),
        ({"tools": TOOLS * 2}, "tools", "declared twice"),
        ({"tools": TOOLS, "tool_choice": "required", "stop": ["x"]}, "stop", "stop sequences"),
    ],
)  # fmt: skip
def test_mistakes_are_400s_naming_the_field(api: Api, body, param, phrase):
    error = refused(api, messages=ASK, **body)

    assert error["param"] == param and phrase in error["message"], error


def test_a_streamed_call_comes_whole_before_the_finish(api: Api):
    body = {"model": TINY, "messages": ASK, "tools": TOOLS, "tool_choice": "required",
            "parallel_tool_calls": False, "max_tokens": 200, "stream": True,
            "temperature": 0}  # fmt: skip
    response = api.client.post(CHAT, json=body, headers=api.headers())

    assert response.status_code == 200, response.text
    events = [e[6:] for e in response.text.split("\n\n") if e and e != "data: [DONE]"]
    chunks = [ChatCompletionChunk.model_validate(json.loads(e)) for e in events]
    deltas = [c.choices[0].delta for c in chunks]
    assert "".join(d.content or "" for d in deltas) == ""  # the call is not text
    [calls] = [d.tool_calls for d in deltas if d.tool_calls]
    assert [c.index for c in calls] == list(range(len(calls)))
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    whole = chat(api, tool_choice="required", parallel_tool_calls=False, temperature=0)
    whole_calls = whole.choices[0].message.tool_calls
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        (c.function.name, c.function.arguments) for c in whole_calls
    ]


# --- Vertex ---------------------------------------------------------------------------------

VERTEX_TOOLS = [{"functionDeclarations": FUNCTIONS}]
CONTENTS = [{"role": "user", "parts": [{"text": "weather in paris?"}]}]


def generate(api: Api, url: str = GENERATE, **body) -> dict:
    body = {"contents": CONTENTS, "tools": VERTEX_TOOLS, **body}
    # Room for every call a parallel turn may make (MAX_CALLS_PER_TURN, about 25 tokens each)
    body.setdefault("generationConfig", {"maxOutputTokens": 280, "temperature": 0})
    response = api.client.post(url, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    return response.json() if url != STREAM else response.text


def mode(name: str, allowed: list[str] | None = None) -> dict:
    config: dict = {"mode": name}
    if allowed:
        config["allowedFunctionNames"] = allowed
    return {"functionCallingConfig": config}


def test_vertex_mode_any_answers_with_function_call_parts(api: Api):
    answer = generate(api, toolConfig=mode("ANY", ["get_time"]))

    [candidate] = answer["candidates"]
    assert candidate["finishReason"] == "STOP"
    calls = [part["functionCall"] for part in candidate["content"]["parts"]]
    assert calls and all(call["name"] == "get_time" for call in calls)
    for call in calls:
        jsonschema.validate(call["args"], SCHEMAS["get_time"])


def test_vertex_mode_none_hides_the_tools_and_counts_agree(api: Api):
    counted = api.client.post(
        COUNT, json={"contents": CONTENTS, "tools": VERTEX_TOOLS}, headers=api.headers()
    ).json()["totalTokens"]
    shown = generate(api)["usageMetadata"]["promptTokenCount"]
    hidden = generate(api, toolConfig=mode("NONE"))

    computed = api.client.post(
        COUNT.replace("countTokens", "computeTokens"),
        json={"contents": CONTENTS, "tools": VERTEX_TOOLS},
        headers=api.headers(),
    ).json()["tokensInfo"]
    assert counted == shown == sum(len(info["tokenIds"]) for info in computed)
    assert hidden["usageMetadata"]["promptTokenCount"] < shown
    assert "functionCall" not in hidden["candidates"][0]["content"]["parts"][0]


def test_vertex_reads_earlier_calls_and_responses(api: Api):
    called = {"functionCall": {"name": "get_weather", "args": {"city": "rome"}}}
    result = {"functionResponse": {"name": "get_weather", "response": {"t": 21}}}
    history = [*CONTENTS, {"role": "model", "parts": [called]}, {"role": "user", "parts": [result]}]
    answer = generate(api, contents=history, toolConfig=mode("AUTO"))
    assert answer["candidates"][0]["content"]["parts"]

    unanswered = [*history[:2], CONTENTS[0]]
    response = api.client.post(
        GENERATE, json={"contents": unanswered, "tools": VERTEX_TOOLS}, headers=api.headers()
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("contents[2]: the calls of the model")


def test_a_vertex_stream_ends_with_its_calls(api: Api):
    text = generate(api, STREAM, toolConfig=mode("ANY"))

    chunks = [json.loads(line[6:]) for line in text.split("\r\n\r\n") if line]
    last = chunks[-1]["candidates"][0]
    assert last["finishReason"] == "STOP"
    assert [p for p in last["content"]["parts"] if "functionCall" in p]
    assert all(
        "functionCall" not in p for c in chunks[:-1] for p in c["candidates"][0]["content"]["parts"]
    )


ALLOWED = "toolConfig.functionCallingConfig.allowedFunctionNames"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"toolConfig": mode("ANY", ["nope"])}, ALLOWED),
        ({"toolConfig": mode("AUTO", ["get_time"])}, ALLOWED),
        ({"toolConfig": mode("SOMETIMES")}, "toolConfig.functionCallingConfig.mode"),
        ({"tools": [{"functionDeclarations": [{"name": "f", "parameterz": {}}]}]},
         "tools[0].functionDeclarations[0].parameterz"),
        ({"tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "NOPE"}}]}]},
         "tools[0].functionDeclarations[0].parameters"),
    ],
)  # fmt: skip
def test_vertex_mistakes_name_the_field(api: Api, body, field):
    response = api.client.post(
        GENERATE, json={"contents": CONTENTS, "tools": VERTEX_TOOLS, **body}, headers=api.headers()
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(f"{field}:")
