"""The generated tool-use task, for the tests and benchmarks: no download, fully deterministic.

A user asks about the weather or the time in a city; the answer is a call of ``get_weather``
(with a ``unit`` when the user names one) or ``get_time``, with the city as its argument. Some
examples go on: the function's result comes back and the model answers in words. A held-out
request is a phrasing and city that no training example combines.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

# Cities the tiny tokenizer knows as single words: the task is choosing the call and its
# arguments, not spelling.
CITIES = ("paris", "rome", "oslo", "lima")
UNITS = ("celsius", "fahrenheit")
WEATHER_PHRASES = (
    "what is the weather in {city}",
    "is it raining in {city} today",
    "how warm is it in {city}",
    "weather for {city}",
    "tell me the forecast for {city}",
    "{city} weather now?",
    "do i need an umbrella in {city}",
    "what is it like outside in {city}",
)
TIME_PHRASES = (
    "what time is it in {city}",
    "current time in {city}",
    "what is the hour in {city}",
    "{city} local time?",
    "tell me the time in {city}",
    "what hour is it now in {city}",
)
UNIT_PHRASES = {"celsius": " in celsius", "fahrenheit": " in fahrenheit"}
OPENINGS = ("", "hey ", "quick question: ", "please tell me ", "i wonder ", "hi, ")
CLOSINGS = ("", " thanks", " please", " right now")

FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": list(UNITS)},
            },
            "required": ["city"],
        },
    },
    {
        "name": "get_time",
        "description": "Time in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
]
OPENAI_TOOLS = [{"type": "function", "function": f} for f in FUNCTIONS]
VERTEX_TOOLS = [{"functionDeclarations": FUNCTIONS}]  # JSON Schema is accepted as parameters


@dataclass(frozen=True)
class ToolExample:
    prompt: str
    name: str  # the function to call
    arguments: dict[str, str]
    result: dict[str, object] | None = None  # with a result, the model answers in words
    answer: str = ""


def _example(rng: random.Random) -> ToolExample:
    city = rng.choice(CITIES)
    opening, closing = rng.choice(OPENINGS), rng.choice(CLOSINGS)
    if rng.random() < 0.5:
        unit = rng.choice((None, *UNITS))
        asked = rng.choice(WEATHER_PHRASES).format(city=city) + UNIT_PHRASES.get(unit or "", "")
        prompt = opening + asked + closing
        arguments = {"city": city, **({"unit": unit} if unit else {})}
        degrees = rng.randint(0, 35)
        result = {"temperature": degrees}
        answer = f"It is {degrees} degrees in {city}."
        example = ToolExample(prompt, "get_weather", arguments, result, answer)
    else:
        hour = rng.randint(0, 23)
        prompt = opening + rng.choice(TIME_PHRASES).format(city=city) + closing
        answer = f"It is {hour}:00 in {city}."
        example = ToolExample(prompt, "get_time", {"city": city}, {"time": f"{hour}:00"}, answer)
    if rng.random() < 0.75:  # most examples end with the call
        example = ToolExample(example.prompt, example.name, example.arguments)
    return example


def split_examples(sizes: tuple[int, int], seed: int = 0) -> tuple[list[ToolExample], ...]:
    """Train and test examples; no prompt of one split appears in the other."""
    phrases = len(WEATHER_PHRASES) * (len(UNITS) + 1) + len(TIME_PHRASES)
    space = len(CITIES) * phrases * len(OPENINGS) * len(CLOSINGS)
    if sum(sizes) > space // 2:  # drawn at random, they would take long to find
        raise ValueError(f"at most {space // 2} examples; asked for {sum(sizes)}")
    rng = random.Random(f"tools-{seed}")
    splits: list[dict[str, ToolExample]] = [{} for _ in sizes]
    seen: set[str] = set()
    for split, size in zip(splits, sizes, strict=True):
        while len(split) < size:
            example = _example(rng)
            if example.prompt not in seen:
                seen.add(example.prompt)
                split[example.prompt] = example
    return tuple(list(split.values()) for split in splits)


def to_openai(example: ToolExample) -> dict:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": example.name, "arguments": json.dumps(example.arguments)},
    }
    messages: list[dict] = [
        {"role": "user", "content": example.prompt},
        {"role": "assistant", "tool_calls": [call]},
    ]
    if example.result is not None:
        messages += [
            {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(example.result)},
            {"role": "assistant", "content": example.answer},
        ]
    return {"tools": OPENAI_TOOLS, "messages": messages}


def to_vertex(example: ToolExample) -> dict:
    call = {"functionCall": {"name": example.name, "args": example.arguments}}
    contents: list[dict] = [
        {"role": "user", "parts": [{"text": example.prompt}]},
        {"role": "model", "parts": [call]},
    ]
    if example.result is not None:
        response = {"functionResponse": {"name": example.name, "response": example.result}}
        contents += [
            {"role": "user", "parts": [response]},
            {"role": "model", "parts": [{"text": example.answer}]},
        ]
    return {"tools": VERTEX_TOOLS, "contents": contents}


def write_tool_task(
    out_dir: Path, *, sizes: tuple[int, int] = (300, 100), style: str = "openai", seed: int = 0
) -> dict[str, Path]:
    """Write ``tools_train.jsonl`` and ``tools_test.jsonl``; return their paths."""
    writer = {"openai": to_openai, "vertex": to_vertex}[style]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, examples in zip(("train", "test"), split_examples(sizes, seed), strict=True):
        path = out_dir / f"tools_{split}.jsonl"
        path.write_text("".join(json.dumps(writer(e)) + "\n" for e in examples), encoding="utf-8")
        paths[split] = path
    return paths


def is_correct_call(name: str, arguments: str, expected: ToolExample) -> bool:
    """The right function, with arguments that match its schema and say what the user asked."""
    import jsonschema

    schema = next(f["parameters"] for f in FUNCTIONS if f["name"] == expected.name)
    try:
        parsed = json.loads(arguments)
        jsonschema.validate(parsed, schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return name == expected.name and parsed == expected.arguments
