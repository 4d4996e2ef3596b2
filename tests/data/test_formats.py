from __future__ import annotations

import pytest

from tuneforge.data.formats import detect_format, fits_format, parse_example
from tuneforge.data.records import (
    Conversation,
    DatasetFormat,
    PreferenceExample,
    Problem,
    Turn,
)

LINE = 7


def parse(obj: dict, *, allow_prompt_only: bool = False):
    fmt = detect_format(obj)
    assert fmt is not None
    return parse_example(obj, fmt, line=LINE, allow_prompt_only=allow_prompt_only)


def example_of(obj: dict, **kwargs):
    example, problems = parse(obj, **kwargs)
    assert problems == []
    return example


def errors_of(obj: dict, **kwargs) -> list[Problem]:
    example, problems = parse(obj, **kwargs)
    assert example is None
    assert all(problem.line == LINE for problem in problems)
    return [problem for problem in problems if problem.severity == "error"]


def vertex_turn(role: str, *texts: str) -> dict:
    return {"role": role, "parts": [{"text": text} for text in texts]}


def vertex(*turns: tuple[str, str], system: str | None = None) -> dict:
    obj: dict = {"contents": [vertex_turn(role, text) for role, text in turns]}
    if system is not None:
        obj["systemInstruction"] = {"parts": [{"text": system}]}
    return obj


def messages(*pairs: tuple[str, object]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


def chat(*pairs: tuple[str, object]) -> dict:
    return {"messages": messages(*pairs)}


def completion(score: object, text: str, role: str = "model") -> dict:
    return {"score": score, "completion": vertex_turn(role, text)}


ASSISTANT = [{"role": "assistant", "content": "yes"}]
PROMPT = Conversation((Turn("user", "q"),))


# --- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "fmt"),
    [
        ({"contents"}, DatasetFormat.VERTEX_SFT),
        ({"systemInstruction", "contents"}, DatasetFormat.VERTEX_SFT),
        ({"system_instruction"}, DatasetFormat.VERTEX_SFT),
        ({"contents", "completions"}, DatasetFormat.VERTEX_PREFERENCE),
        ({"messages"}, DatasetFormat.OPENAI_CHAT),
        ({"input", "preferred_output", "non_preferred_output"}, DatasetFormat.OPENAI_PREFERENCE),
        ({"input", "non_preferred_output"}, DatasetFormat.OPENAI_PREFERENCE),
        ({"prompt", "chosen", "rejected"}, DatasetFormat.PROMPT_CHOSEN_REJECTED),
        ({"prompt", "rejected"}, DatasetFormat.PROMPT_CHOSEN_REJECTED),
        ({"prompt", "completion"}, DatasetFormat.PROMPT_COMPLETION),
        ({"text_input", "output"}, DatasetFormat.PROMPT_COMPLETION),
        ({"input_text", "output_text"}, DatasetFormat.PROMPT_COMPLETION),
        ({"prompt"}, DatasetFormat.PROMPT_COMPLETION),
        ({"input", "output"}, None),
        ({"text"}, None),
        (set(), None),
    ],
)
def test_detect_format_by_keys(keys, fmt):
    assert detect_format(dict.fromkeys(keys, "x")) == fmt


def test_fits_format_when_every_identifying_key_belongs_to_the_format():
    assert fits_format({"prompt": "q", "extra": 1}, DatasetFormat.PROMPT_CHOSEN_REJECTED)
    assert fits_format({"contents": []}, DatasetFormat.VERTEX_PREFERENCE)
    assert not fits_format({"prompt": "q", "completion": "a"}, DatasetFormat.PROMPT_CHOSEN_REJECTED)
    assert not fits_format({"extra": 1}, DatasetFormat.PROMPT_COMPLETION)


# --- valid lines -----------------------------------------------------------------------------


def test_vertex_sft_with_a_system_instruction_and_multi_part_texts():
    obj = {
        "systemInstruction": {"role": "system", "parts": [{"text": "Be "}, {"text": "brief."}]},
        "contents": [
            vertex_turn("user", "Hi ", "there"),
            vertex_turn("model", "Hello"),
            vertex_turn("user", "Bye"),
            vertex_turn("model", "Goodbye"),
        ],
    }
    assert example_of(obj) == Conversation(
        (Turn("user", "Hi there"), Turn("model", "Hello"), Turn("user", "Bye"),
         Turn("model", "Goodbye")),
        system="Be brief.",
    )  # fmt: skip


def test_vertex_sft_accepts_the_snake_case_system_instruction():
    obj = vertex(("user", "q"), ("model", "a"))
    obj["system_instruction"] = {"parts": [{"text": "sys"}]}
    assert example_of(obj).system == "sys"


def test_openai_chat_with_system_developer_parts_and_weights():
    obj = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"text": "there"}]},
            {"role": "assistant", "content": "Hello", "weight": 0},
            {"role": "user", "content": "Bye", "name": "bob"},
            {"role": "assistant", "content": "Goodbye", "weight": 1},
        ]
    }
    assert example_of(obj) == Conversation(
        (Turn("user", "Hi there"), Turn("model", "Hello", weight=0), Turn("user", "Bye"),
         Turn("model", "Goodbye")),
        system="Be brief.",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("prompt_key", "completion_key"),
    [("prompt", "completion"), ("text_input", "output"), ("input_text", "output_text")],
)
def test_prompt_completion_spellings(prompt_key, completion_key):
    example = example_of({prompt_key: "2+2?", completion_key: "4"})
    assert example == Conversation((Turn("user", "2+2?"), Turn("model", "4")), system=None)


def test_openai_preference():
    obj = {
        "input": {"messages": messages(("system", "sys"), ("user", "q"))},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    expected = PreferenceExample(Conversation((Turn("user", "q"),), "sys"), "good", "bad")
    assert example_of(obj) == expected


def test_vertex_preference_takes_the_highest_and_lowest_scores():
    obj = vertex(("user", "q"), system="sys")
    obj["completions"] = [completion(0.5, "meh"), completion(2, "good"), completion(-1, "bad")]
    expected = PreferenceExample(Conversation((Turn("user", "q"),), "sys"), "good", "bad")
    assert example_of(obj) == expected


def test_prompt_chosen_rejected_with_strings():
    assert example_of({"prompt": "q", "chosen": "good", "rejected": "bad"}) == PreferenceExample(
        PROMPT, "good", "bad"
    )


def test_prompt_chosen_rejected_with_a_message_list_prompt_and_message_responses():
    obj = {
        "prompt": messages(("system", "sys"), ("user", "q")),
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": "bad",
    }
    expected = PreferenceExample(Conversation((Turn("user", "q"),), "sys"), "good", "bad")
    assert example_of(obj) == expected


@pytest.mark.parametrize(
    "obj",
    [
        vertex(("user", "q")),
        vertex(("user", "q"), ("model", "a"), ("user", "again")),
        chat(("system", "s"), ("user", "q")),
        {"prompt": "q"},
        {"text_input": "q"},
    ],
)
def test_a_prompt_without_response_is_allowed_when_asked_for(obj):
    example = example_of(obj, allow_prompt_only=True)
    assert example.is_prompt_only


def test_an_example_with_only_weight_zero_responses_is_kept_with_a_warning():
    example, problems = parse(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a",
                                                          "weight": 0}]}
    )  # fmt: skip
    assert example is not None
    [problem] = problems
    assert (problem.line, problem.field, problem.severity) == (LINE, "messages", "warning")
    assert "weight 0" in problem.message


# --- errors: every one names the line, the field and what was expected ------------------------

ERRORS = {
    # Vertex / Gemini SFT
    "vertex unknown role": (
        vertex(("user", "q"), ("assistant", "a")),
        "contents[1].role",
        'unknown role "assistant"; expected "user" or "model"',
    ),
    "vertex system role in contents": (
        vertex(("system", "s"), ("user", "q"), ("model", "a")),
        "contents[0].role",
        '"systemInstruction"',
    ),
    "vertex missing role": (
        {"contents": [{"parts": [{"text": "q"}]}, vertex_turn("model", "a")]},
        "contents[0].role",
        'missing "role"',
    ),
    "vertex starts with model": (
        vertex(("model", "a"), ("user", "q")),
        "contents[0].role",
        'expected a "user" turn here',
    ),
    "vertex turns out of order": (
        vertex(("user", "q"), ("model", "a"), ("model", "b")),
        "contents[2].role",
        'turns must alternate "user", "model"',
    ),
    "vertex ends with user": (
        vertex(("user", "q"), ("model", "a"), ("user", "q2")),
        "contents[2]",
        'must end with a "model" turn',
    ),
    "vertex empty text": (
        vertex(("user", "q"), ("model", "  ")),
        "contents[1].parts[0].text",
        "the text is empty or only whitespace",
    ),
    "vertex empty multi-part text": (
        {"contents": [vertex_turn("user", "q"), vertex_turn("model", "", "")]},
        "contents[1].parts",
        "the text is empty or only whitespace",
    ),
    "vertex text not a string": (
        {"contents": [vertex_turn("user", "q"), {"role": "model", "parts": [{"text": 42}]}]},
        "contents[1].parts[0].text",
        "expected text (a string); found a number (42)",
    ),
    "vertex inline data": (
        {
            "contents": [
                {"role": "user", "parts": [{"inlineData": {"mimeType": "image/png"}}]},
                vertex_turn("model", "a"),
            ]
        },
        "contents[0].parts[0].inlineData.data",
        'missing "data"; expected the part\'s bytes in base64',
    ),
    "vertex file data": (
        {
            "contents": [
                {"role": "user", "parts": [{"text": "see"}, {"fileData": {}}]},
                vertex_turn("model", "a"),
            ]
        },
        "contents[0].parts[1].fileData.mimeType",
        'missing "mimeType"',
    ),
    "vertex part without text": (
        {"contents": [{"role": "user", "parts": [{"txt": "q"}]}, vertex_turn("model", "a")]},
        "contents[0].parts[0]",
        'missing "text"',
    ),
    "vertex missing parts": (
        {"contents": [{"role": "user"}, vertex_turn("model", "a")]},
        "contents[0].parts",
        'missing "parts"',
    ),
    "vertex parts not a list": (
        {"contents": [{"role": "user", "parts": "q"}, vertex_turn("model", "a")]},
        "contents[0].parts",
        "expected a list of parts",
    ),
    "vertex turn not an object": (
        {"contents": ["q", vertex_turn("model", "a")]},
        "contents[0]",
        'expected a turn like {"role": "user"',
    ),
    "vertex contents not a list": (
        {"contents": {"role": "user"}},
        "contents",
        "expected a list of turns",
    ),
    "vertex contents empty": ({"contents": []}, "contents", "the list is empty"),
    "vertex system instruction without contents": (
        {"systemInstruction": {"parts": [{"text": "s"}]}},
        "contents",
        'missing "contents"',
    ),
    "vertex system instruction not an object": (
        {"systemInstruction": "be brief", **vertex(("user", "q"), ("model", "a"))},
        "systemInstruction",
        'expected an object like {"parts"',
    ),
    "vertex empty system instruction": (
        vertex(("user", "q"), ("model", "a"), system=""),
        "systemInstruction.parts[0].text",
        "the text is empty or only whitespace",
    ),
    # OpenAI chat
    "openai unknown role": (
        chat(("user", "q"), ("model", "a")),
        "messages[1].role",
        'unknown role "model"; expected "system", "user", "assistant" or "tool"',
    ),
    "openai tool message without its call's id": (
        chat(("user", "q"), ("tool", "a")),
        "messages[1].tool_call_id",
        'missing "tool_call_id"',
    ),
    "openai missing role": (
        {"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]},
        "messages[0].role",
        'missing "role"',
    ),
    "openai system not first": (
        chat(("user", "q"), ("system", "s"), ("assistant", "a")),
        "messages[1].role",
        "a system message may only be the first message",
    ),
    "openai out of order": (
        chat(("user", "q"), ("user", "q2"), ("assistant", "a")),
        "messages[1].role",
        'expected an "assistant" message here',
    ),
    "openai starts with assistant": (
        chat(("system", "s"), ("assistant", "a")),
        "messages[1].role",
        'expected a "user" message here',
    ),
    "openai ends with user": (
        chat(("user", "q"), ("assistant", "a"), ("user", "q2")),
        "messages[2]",
        'must end with an "assistant" message',
    ),
    "openai only a system message": (
        chat(("system", "s")),
        "messages",
        'expected at least one "user" message',
    ),
    "openai content a number": (
        chat(("user", 5), ("assistant", "a")),
        "messages[0].content",
        "expected a string or a list of text parts; found a number (5)",
    ),
    "openai content null": (
        chat(("user", "q"), ("assistant", None)),
        "messages[1].content",
        "found null",
    ),
    "openai missing content": (
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]},
        "messages[1].content",
        'missing "content"',
    ),
    "openai tool calls": (
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            ]
        },
        "messages[1].tool_calls[0].function",
        'missing "function"',
    ),
    "openai image part": (
        chat(("user", [{"type": "image_url", "image_url": {"url": "x"}}]), ("assistant", "a")),
        "messages[0].content[0].image_url.url",
        "expected a base64 data URL like data:image/png;base64,...",
    ),
    "openai part text not a string": (
        chat(("user", [{"type": "text", "text": ["q"]}]), ("assistant", "a")),
        "messages[0].content[0].text",
        "expected text (a string); found an array",
    ),
    "openai empty content": (
        chat(("user", ""), ("assistant", "a")),
        "messages[0].content",
        "the text is empty or only whitespace",
    ),
    "openai weight on a user message": (
        {
            "messages": [
                {"role": "user", "content": "q", "weight": 1},
                {"role": "assistant", "content": "a"},
            ]
        },
        "messages[0].weight",
        '"weight" is only allowed on assistant messages',
    ),
    "openai weight 2": (
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": 2},
            ]
        },
        "messages[1].weight",
        "expected 0 or 1; found a number (2)",
    ),
    "openai weight true": (
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": True},
            ]
        },
        "messages[1].weight",
        "expected 0 or 1; found a boolean (true)",
    ),
    "openai messages empty": ({"messages": []}, "messages", "the list is empty"),
    "openai message not an object": (
        {"messages": ["q", {"role": "assistant", "content": "a"}]},
        "messages[0]",
        'expected a message like {"role": "user"',
    ),
    # prompt / completion
    "completion missing": (
        {"prompt": "q"},
        "completion",
        'missing "completion"; a supervised example needs the response to learn',
    ),
    "output missing": ({"text_input": "q"}, "output", 'missing "output"'),
    "prompt missing": ({"completion": "a"}, "prompt", 'missing "prompt"'),
    "completion a number": (
        {"prompt": "q", "completion": 4},
        "completion",
        "expected text (a string); found a number (4)",
    ),
    "prompt empty": (
        {"input_text": " \n", "output_text": "a"},
        "input_text",
        "the text is empty or only whitespace",
    ),
    # OpenAI DPO
    "dpo missing non preferred output": (
        {"input": {"messages": messages(("user", "q"))}, "preferred_output": ASSISTANT},
        "non_preferred_output",
        'missing "non_preferred_output"; expected the rejected response',
    ),
    "dpo missing preferred output": (
        {"input": {"messages": messages(("user", "q"))}, "non_preferred_output": ASSISTANT},
        "preferred_output",
        'missing "preferred_output"; expected the preferred response',
    ),
    "dpo missing input": (
        {"preferred_output": ASSISTANT, "non_preferred_output": ASSISTANT},
        "input",
        'missing "input"',
    ),
    "dpo input not an object": (
        {"input": "q", "preferred_output": ASSISTANT, "non_preferred_output": ASSISTANT},
        "input",
        'expected an object like {"messages"',
    ),
    "dpo prompt ends with assistant": (
        {
            "input": {"messages": messages(("user", "q"), ("assistant", "a"))},
            "preferred_output": ASSISTANT,
            "non_preferred_output": ASSISTANT,
        },
        "input.messages[1]",
        'a preference prompt must end with a "user" message',
    ),
    "dpo two responses": (
        {
            "input": {"messages": messages(("user", "q"))},
            "preferred_output": ASSISTANT * 2,
            "non_preferred_output": ASSISTANT,
        },
        "preferred_output",
        "found 2 messages",
    ),
    "dpo response from the user": (
        {
            "input": {"messages": messages(("user", "q"))},
            "preferred_output": ASSISTANT,
            "non_preferred_output": [{"role": "user", "content": "no"}],
        },
        "non_preferred_output[0].role",
        'expected "assistant"',
    ),
    "dpo response content a number": (
        {
            "input": {"messages": messages(("user", "q"))},
            "preferred_output": ASSISTANT,
            "non_preferred_output": [{"role": "assistant", "content": 1}],
        },
        "non_preferred_output[0].content",
        "found a number (1)",
    ),
    # Vertex preference
    "vertex preference equal scores": (
        {**vertex(("user", "q")), "completions": [completion(1, "a"), completion(1, "b")]},
        "completions",
        "all completions have the same score (1)",
    ),
    "vertex preference one completion": (
        {**vertex(("user", "q")), "completions": [completion(1, "a")]},
        "completions",
        "expected at least two completions",
    ),
    "vertex preference score a string": (
        {**vertex(("user", "q")), "completions": [completion("high", "a"), completion(0, "b")]},
        "completions[0].score",
        'expected a number (the preferred completion scores higher); found a string ("high")',
    ),
    "vertex preference missing score": (
        {
            **vertex(("user", "q")),
            "completions": [{"completion": vertex_turn("model", "a")}, completion(0, "b")],
        },
        "completions[0].score",
        'missing "score"',
    ),
    "vertex preference missing completion": (
        {**vertex(("user", "q")), "completions": [{"score": 1}, completion(0, "b")]},
        "completions[0].completion",
        'missing "completion"',
    ),
    "vertex preference completion by the user": (
        {**vertex(("user", "q")), "completions": [completion(1, "a", "user"), completion(0, "b")]},
        "completions[0].completion.role",
        'unknown role "user"; expected "model"',
    ),
    "vertex preference prompt ends with model": (
        {
            **vertex(("user", "q"), ("model", "a")),
            "completions": [completion(1, "a"), completion(0, "b")],
        },
        "contents[1]",
        'the prompt ends with a "model" turn',
    ),
    "vertex preference missing contents": (
        {"completions": [completion(1, "a"), completion(0, "b")]},
        "contents",
        'missing "contents"',
    ),
    "vertex preference completions not a list": (
        {**vertex(("user", "q")), "completions": {"score": 1}},
        "completions",
        'expected a list like [{"score": 1',
    ),
    # prompt / chosen / rejected
    "rejected missing": (
        {"prompt": "q", "chosen": "good"},
        "rejected",
        'missing "rejected"; expected the rejected response',
    ),
    "chosen missing": (
        {"prompt": "q", "rejected": "bad"},
        "chosen",
        'missing "chosen"; expected the preferred response',
    ),
    "chosen a number": (
        {"prompt": "q", "chosen": 1, "rejected": "bad"},
        "chosen",
        "expected text (a string); found a number (1)",
    ),
    "prompt messages end with assistant": (
        {"prompt": messages(("user", "q"), ("assistant", "a")), "chosen": "x", "rejected": "y"},
        "prompt[1]",
        'a preference prompt must end with a "user" message',
    ),
    "prompt an object": (
        {"prompt": {"text": "q"}, "chosen": "x", "rejected": "y"},
        "prompt",
        "expected the prompt: a string or a list of messages; found an object",
    ),
}


@pytest.mark.parametrize(("obj", "field", "phrase"), ERRORS.values(), ids=ERRORS.keys())
def test_each_error_names_the_line_the_field_and_what_was_expected(obj, field, phrase):
    errors = errors_of(obj)
    assert [(e.line, e.field) for e in errors if phrase in e.message] == [(LINE, field)], errors


def test_every_problem_in_a_line_is_reported():
    obj = {
        "messages": [
            {"role": "user", "content": 1},
            {"role": "bot", "content": "a"},
            {"role": "user", "content": [{"type": "input_audio"}]},
            {"role": "assistant", "content": "a", "weight": 5},
        ]
    }
    assert [e.field for e in errors_of(obj)] == [
        "messages[0].content",
        "messages[1].role",
        "messages[2].content[0].input_audio",
        "messages[3].weight",
    ]


def test_a_lone_surrogate_in_text_is_an_error():
    [error] = errors_of(chat(("user", "bad \ud800"), ("assistant", "a")))
    assert error.field == "messages[0].content"
    assert "lone surrogate" in error.message


def test_long_and_odd_found_values_are_shortened_and_printable():
    [error] = errors_of(chat(("user", "q"), ("x" * 500 + "\ud800", "a")))
    assert len(error.message) < 200
    error.message.encode("utf-8")  # no lone surrogate left to break a terminal
