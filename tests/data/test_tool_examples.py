"""Tool-use examples in both services' formats: read into one canonical conversation, rendered
through the model's own template with its tools, loss on the model's calls and answers only,
and every mistake named by line and field."""

from __future__ import annotations

import copy
import json

import pytest

from tuneforge.data.formats import parse_example
from tuneforge.data.records import DatasetFormat, ToolCall
from tuneforge.data.tokenize import IGNORE_INDEX, tokenize_conversation
from tuneforge.data.tool_samples import write_tool_task
from tuneforge.data.validate import validate_dataset
from tuneforge.models.loading import FALLBACK_CHAT_TEMPLATE

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    },
}
OPENAI_TOOLS = [{"type": "function", "function": WEATHER}]
VERTEX_TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {
                    "type": "OBJECT",
                    "properties": {
                        "city": {"type": "STRING"},
                        "unit": {"type": "STRING", "enum": ["c", "f"]},
                    },
                    "required": ["city"],
                },
            }
        ]
    }
]


def openai_line(arguments: str = '{"city": "Paris"}', **changes) -> dict:
    line = {
        "tools": OPENAI_TOOLS,
        "messages": [
            {"role": "system", "content": "You answer about the weather."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
            {"role": "assistant", "content": "It is 21 degrees."},
        ],
    }
    return {**line, **changes}


def vertex_line() -> dict:
    return {
        "systemInstruction": {"parts": [{"text": "You answer about the weather."}]},
        "tools": VERTEX_TOOLS,
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}],
            },
            {"role": "model", "parts": [{"text": "It is 21 degrees."}]},
        ],
    }


def parse(line: dict, fmt: DatasetFormat = DatasetFormat.OPENAI_CHAT):
    return parse_example(line, fmt, line=3)


def errors(line: dict, fmt: DatasetFormat = DatasetFormat.OPENAI_CHAT) -> list[tuple[str, str]]:
    example, problems = parse(line, fmt)
    assert example is None
    return [(p.field, p.message) for p in problems if p.severity == "error"]


def test_an_openai_tool_conversation_reads_into_turns_with_calls_and_results():
    example, problems = parse(openai_line())
    assert problems == []
    assert [t.role for t in example.turns] == ["user", "model", "tool", "model"]
    call = ToolCall("get_weather", '{"city":"Paris"}', "call_1")
    assert example.turns[1].tool_calls == (call,)
    assert example.turns[2].call == call and example.turns[2].text == '{"temp": 21}'
    assert [f.name for f in example.tools] == ["get_weather"]
    assert json.loads(example.tools[0].parameters) == WEATHER["parameters"]


def test_the_vertex_spelling_renders_the_same_text_as_the_openai_one(tiny_tokenizer):
    openai, _ = parse(openai_line())
    vertex, problems = parse(vertex_line(), DatasetFormat.VERTEX_SFT)
    assert problems == []
    # Vertex's OpenAPI schema becomes JSON Schema (with no properties beyond those declared)
    assert json.loads(vertex.tools[0].parameters) == {
        **WEATHER["parameters"],
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "additionalProperties": False,
    }
    vertex_result = vertex.turns[2]
    assert vertex_result.call.name == "get_weather" and vertex_result.text == '{"temp":21}'
    as_openai = tokenize_conversation(openai, tiny_tokenizer)
    as_vertex = tokenize_conversation(vertex, tiny_tokenizer)
    openai_text = tiny_tokenizer.decode(as_openai.input_ids)
    assert "Tools:\nget_weather(city, unit?: c|f): The weather in a city\n" in openai_text
    assert '<tool_call>{"name": "get_weather"' in openai_text
    # Only the tool result's JSON is spelled differently.
    vertex_text = tiny_tokenizer.decode(as_vertex.input_ids)
    assert vertex_text.replace('{"temp":21}', '{"temp": 21}') == openai_text


def test_loss_falls_on_the_calls_and_the_answer_only(tiny_tokenizer):
    example, _ = parse(openai_line())
    tokenized = tokenize_conversation(example, tiny_tokenizer)
    trained = tiny_tokenizer.decode(
        [
            t
            for t, label in zip(tokenized.input_ids, tokenized.labels, strict=True)
            if label != IGNORE_INDEX
        ]
    )
    assert trained == (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call><|im_end|>\n'
        "It is 21 degrees.<|im_end|>\n"
    )


ERRORS = {
    "call of an undeclared function": (
        openai_line(tools=[{"type": "function", "function": {**WEATHER, "name": "get_time"}}]),
        "messages[2].tool_calls[0].function.name",
        'calls "get_weather", which is not declared in tools (declared: "get_time")',
    ),
    "a call with no tools at all": (
        {k: v for k, v in openai_line().items() if k != "tools"},
        "messages[2].tool_calls[0].function.name",
        "none: the example has no tools",
    ),
    "arguments that are not JSON": (
        openai_line(arguments="{city: Paris}"),
        "messages[2].tool_calls[0].function.arguments",
        "not JSON",
    ),
    "arguments that are not an object": (
        openai_line(arguments='["Paris"]'),
        "messages[2].tool_calls[0].function.arguments",
        "expected a JSON object; found an array",
    ),
    "arguments missing a required property": (
        openai_line(arguments='{"unit": "c"}'),
        "messages[2].tool_calls[0].function.arguments",
        "'city' is a required property (the parameters of get_weather)",
    ),
    "arguments of the wrong type": (
        openai_line(arguments='{"city": "Paris", "unit": "k"}'),
        "messages[2].tool_calls[0].function.arguments",
        "unit: 'k' is not one of ['c', 'f']",
    ),
    "a tool message answering no call": (
        openai_line(
            messages=[
                {"role": "user", "content": "q"},
                {"role": "tool", "tool_call_id": "call_9", "content": "x"},
                {"role": "assistant", "content": "a"},
            ]
        ),
        "messages[1].tool_call_id",
        'answers tool_call_id "call_9", but the assistant message before it made no such call',
    ),
    "a tool message answering another id": (
        openai_line(
            messages=[
                *openai_line()["messages"][:3],
                {"role": "tool", "tool_call_id": "call_2", "content": "x"},
                {"role": "assistant", "content": "a"},
            ]
        ),
        "messages[3].tool_call_id",
        'left only these unanswered: "call_1"',
    ),
    "a call left unanswered": (
        openai_line(
            messages=[*openai_line()["messages"][:3], {"role": "assistant", "content": "a"}]
        ),
        "messages[3]",
        'need a tool message each before the conversation goes on; not answered: "call_1"',
    ),
    "two calls when parallel calls are off": (
        openai_line(
            parallel_tool_calls=False,
            messages=[
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": i,
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "x"}'},
                        }
                        for i in ("a", "b")
                    ],
                },
                {"role": "tool", "tool_call_id": "a", "content": "1"},
                {"role": "tool", "tool_call_id": "b", "content": "2"},
                {"role": "assistant", "content": "done"},
            ],
        ),
        "parallel_tool_calls",
        "is false, but an assistant message makes 2 calls",
    ),
    "a function declared twice": (
        openai_line(tools=OPENAI_TOOLS * 2),
        "tools",
        'the function "get_weather" is declared twice',
    ),
    "a function name with spaces": (
        openai_line(tools=[{"type": "function", "function": {**WEATHER, "name": "get weather"}}]),
        "tools[0].function.name",
        "expected a function name",
    ),
    "parameters that are not a schema": (
        openai_line(
            tools=[{"type": "function", "function": {**WEATHER, "parameters": {"type": 7}}}]
        ),
        "tools[0].function.parameters",
        "not a JSON schema",
    ),
    "a tool that is not a function": (
        openai_line(tools=[{"type": "web_search"}]),
        "tools[0].type",
        'only "function" tools are supported; found "web_search"',
    ),
}


@pytest.mark.parametrize(("line", "field", "phrase"), ERRORS.values(), ids=ERRORS.keys())
def test_each_openai_mistake_is_named_by_its_field(line, field, phrase):
    found = errors(line)
    assert any(f == field and phrase in m for f, m in found), found


def vertex_with(contents: list | None = None, tools: list | None = None) -> dict:
    line = vertex_line()
    return {**line, "contents": contents or line["contents"], "tools": tools or line["tools"]}


VERTEX_ERRORS = {
    "a call in a user turn": (
        vertex_with(
            [
                {"role": "user", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
                {"role": "model", "parts": [{"text": "a"}]},
            ]
        ),
        "contents[0].parts[0].functionCall",
        'a functionCall belongs in a "model" turn',
    ),
    "a response to a function that was not called": (
        vertex_with(
            [
                *vertex_line()["contents"][:2],
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "get_time", "response": {}}}],
                },
                {"role": "model", "parts": [{"text": "a"}]},
            ]
        ),
        "contents[2].parts[0]",
        'answers a call of "get_time"',
    ),
    "args that do not match": (
        vertex_with(
            [
                vertex_line()["contents"][0],
                {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "get_weather", "args": {"city": 7}}}],
                },
                *vertex_line()["contents"][2:],
            ]
        ),
        "contents[1].parts[0].functionCall.args",
        "city: 7 is not of type 'string'",
    ),
    "a call whose id is not text": (
        vertex_with(
            [
                vertex_line()["contents"][0],
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "id": 7}}]},
                *vertex_line()["contents"][2:],
            ]
        ),
        "contents[1].parts[0].functionCall.id",
        "expected text; found a number (7)",
    ),
    "a search tool": (
        vertex_with(tools=[{"googleSearch": {}}]),
        "tools[0].googleSearch",
        "only functionDeclarations are supported",
    ),
    "a response mixed with text": (
        vertex_with(
            [
                *vertex_line()["contents"][:2],
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {}}},
                        {"text": "and?"},
                    ],
                },
                {"role": "model", "parts": [{"text": "a"}]},
            ]
        ),
        "contents[2].parts",
        "holds only functionResponse parts",
    ),
}


@pytest.mark.parametrize(
    ("line", "field", "phrase"), VERTEX_ERRORS.values(), ids=VERTEX_ERRORS.keys()
)
def test_each_vertex_mistake_is_named_by_its_field(line, field, phrase):
    found = errors(line, DatasetFormat.VERTEX_SFT)
    assert any(f == field and phrase in m for f, m in found), found


def test_a_template_without_tools_is_named_for_each_line(tiny_tokenizer):
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    plain = {"messages": [*openai_line()["messages"][:2], {"role": "assistant", "content": "x"}]}
    data = "\n".join(json.dumps(line) for line in (openai_line(), plain)).encode()
    report = validate_dataset(data, tokenizer=tokenizer, max_length=512, min_examples=1)
    assert [(p.line, p.field) for p in report.problems if p.severity == "error"] == [(1, "tools")]
    assert "does not support tools" in report.problems[0].message


def test_the_fallback_template_shows_tools_and_writes_calls(tiny_tokenizer):
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    example, _ = parse(openai_line())
    text = tokenizer.decode(tokenize_conversation(example, tokenizer).input_ids)
    assert text.startswith('Tools: {"type": "function", "function": {"name": "get_weather"')
    assert (
        'Assistant: <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
        in text
    )
    assert 'Tool: {"temp": 21}\n' in text


@pytest.mark.parametrize("style", ["openai", "vertex"])
def test_the_generated_tool_task_validates_and_holds_its_test_split_out(tmp_path, style):
    paths = write_tool_task(tmp_path, sizes=(60, 20), style=style)

    train = validate_dataset(paths["train"], min_examples=1, recommended_examples=1)
    test = validate_dataset(paths["test"], min_examples=1, recommended_examples=1)
    assert (train.problems, test.problems) == ([], [])
    assert (train.example_count, test.example_count) == (60, 20)
    prompts = [{e.turns[0].text for e in report.examples} for report in (train, test)]
    assert not prompts[0] & prompts[1]
    calls = [e.turns[1].tool_calls[0] for e in test.examples]
    assert {c.name for c in calls} == {"get_weather", "get_time"}


def test_a_vertex_response_with_an_id_answers_a_call_without_one():
    line = vertex_line()
    line["contents"][2]["parts"][0]["functionResponse"]["id"] = "fc-1"
    example, problems = parse(line, DatasetFormat.VERTEX_SFT)

    assert problems == [] and example.turns[2].call.name == "get_weather"
