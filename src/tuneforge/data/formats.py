"""Detect a line's dataset format by its keys and parse it into a canonical example.

One parser per format (DESIGN.md, "Datasets"). Each collects every problem it finds in the
line, each naming the field path (``contents[2].parts[0].text``) and what was expected, and
returns the example only when the line has no error. Nothing here raises for bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from tuneforge.data.checks import LineIssues, describe, found, path_at
from tuneforge.data.records import (
    Conversation,
    DatasetFormat,
    Example,
    PreferenceExample,
    Problem,
    Turn,
)
from tuneforge.data.tools import openai_tools, vertex_tools
from tuneforge.data.turns import (
    OPENAI_MESSAGES,
    OPENAI_RESPONSE,
    Ending,
    openai_messages,
    openai_response,
    vertex_contents,
    vertex_turn,
)

FORMAT_NAMES = {
    DatasetFormat.VERTEX_SFT: "Vertex/Gemini SFT",
    DatasetFormat.OPENAI_CHAT: "OpenAI chat",
    DatasetFormat.PROMPT_COMPLETION: "prompt/completion",
    DatasetFormat.OPENAI_PREFERENCE: "OpenAI DPO preference",
    DatasetFormat.VERTEX_PREFERENCE: "Vertex preference",
    DatasetFormat.PROMPT_CHOSEN_REJECTED: "prompt/chosen/rejected preference",
}

FORMAT_KEYS = {
    DatasetFormat.VERTEX_SFT: '"contents", optionally with "systemInstruction"',
    DatasetFormat.OPENAI_CHAT: '"messages"',
    DatasetFormat.PROMPT_COMPLETION: (
        '"prompt" + "completion", "text_input" + "output" or "input_text" + "output_text"'
    ),
    DatasetFormat.OPENAI_PREFERENCE: '"input" + "preferred_output" + "non_preferred_output"',
    DatasetFormat.VERTEX_PREFERENCE: '"contents" + "completions"',
    DatasetFormat.PROMPT_CHOSEN_REJECTED: '"prompt" + "chosen" + "rejected"',
}

# (prompt key, completion key) spellings of the prompt/completion format.
PROMPT_COMPLETION_KEYS = (
    ("prompt", "completion"),
    ("text_input", "output"),
    ("input_text", "output_text"),
)

# The keys that identify each format; a line may lack some of them (and get a problem for it).
FORMAT_KEYSETS = {
    DatasetFormat.VERTEX_SFT: frozenset(
        {"contents", "systemInstruction", "system_instruction", "tools"}
    ),
    DatasetFormat.OPENAI_CHAT: frozenset({"messages", "tools", "parallel_tool_calls"}),
    DatasetFormat.PROMPT_COMPLETION: frozenset(
        key for pair in PROMPT_COMPLETION_KEYS for key in pair
    ),
    DatasetFormat.OPENAI_PREFERENCE: frozenset(
        {"input", "preferred_output", "non_preferred_output"}
    ),
    DatasetFormat.VERTEX_PREFERENCE: frozenset(
        {"contents", "completions", "systemInstruction", "system_instruction"}
    ),
    DatasetFormat.PROMPT_CHOSEN_REJECTED: frozenset({"prompt", "chosen", "rejected"}),
}
IDENTIFYING_KEYS = frozenset().union(*FORMAT_KEYSETS.values())

PROMPT = "the prompt: a string or a list of messages"
SCORE = "a number (the preferred completion scores higher)"


def detect_format(obj: dict) -> DatasetFormat | None:
    """The format a line's keys say it is in, or None when they match no format."""
    if "completions" in obj:
        return DatasetFormat.VERTEX_PREFERENCE
    if {"contents", "systemInstruction", "system_instruction"} & obj.keys():
        return DatasetFormat.VERTEX_SFT
    if "messages" in obj:
        return DatasetFormat.OPENAI_CHAT
    if "preferred_output" in obj or "non_preferred_output" in obj:
        return DatasetFormat.OPENAI_PREFERENCE
    if "chosen" in obj or "rejected" in obj:
        return DatasetFormat.PROMPT_CHOSEN_REJECTED
    if {"prompt", "completion", "text_input", "input_text", "output_text"} & obj.keys():
        return DatasetFormat.PROMPT_COMPLETION
    return None


def fits_format(obj: dict, fmt: DatasetFormat) -> bool:
    """True when every format-identifying key of ``obj`` belongs to ``fmt``.

    ``{"prompt": ...}`` fits both prompt/completion and prompt/chosen/rejected, so a line that
    lacks its other keys can be read in the format of the file around it.
    """
    keys = obj.keys() & IDENTIFYING_KEYS
    return bool(keys) and keys <= FORMAT_KEYSETS[fmt]


def parse_vertex_sft(obj: dict, issues: LineIssues, allow_prompt_only: bool) -> Example | None:
    tools = vertex_tools(obj["tools"], "tools", issues) if "tools" in obj else ()
    return vertex_contents(obj, issues, "any" if allow_prompt_only else "model", tools)


def parse_vertex_preference(
    obj: dict, issues: LineIssues, allow_prompt_only: bool
) -> Example | None:
    prompt = vertex_contents(obj, issues, "user")
    expected = 'a list like [{"score": 1, "completion": {"role": "model", "parts": [...]}}, ...]'
    completions = None
    if issues.missing(obj, "completions", "", expected):
        completions = issues.list_of(obj["completions"], "completions", expected)
    scored: list[tuple[float, str]] = []
    for index, item_value in enumerate(completions or []):
        path = path_at("completions", index)
        item = issues.object_of(item_value, path, '{"score": ..., "completion": {...}}')
        if item is None:
            continue
        score = item.get("score")
        is_number = isinstance(score, int | float) and not isinstance(score, bool)
        if issues.missing(item, "score", path, SCORE) and not is_number:
            issues.error(path_at(path, "score"), f"expected {SCORE}; found {found(score)}")
        turn = None
        if issues.missing(item, "completion", path, '{"role": "model", "parts": [...]}'):
            turn = vertex_turn(item["completion"], path_at(path, "completion"), issues, ("model",))
        if is_number and turn is not None:
            scored.append((score, turn.text))
    if completions and len(completions) < 2:
        issues.error(
            "completions", "expected at least two completions: a preferred and a rejected one"
        )
    elif len(scored) == len(completions or ()) and len({s for s, _ in scored}) == 1:
        issues.error(
            "completions",
            f"all completions have the same score ({describe(scored[0][0])}); the preferred"
            " completion needs a higher score than the rejected one",
        )
    if prompt is None or issues.has_errors:
        return None
    chosen = max(scored, key=lambda item: item[0])[1]
    rejected = min(scored, key=lambda item: item[0])[1]
    return PreferenceExample(prompt, chosen, rejected)


def parse_openai_chat(obj: dict, issues: LineIssues, allow_prompt_only: bool) -> Example | None:
    if not issues.missing(obj, "messages", "", OPENAI_MESSAGES):
        return None
    ending: Ending = "any" if allow_prompt_only else "model"
    tools = openai_tools(obj["tools"], "tools", issues) if "tools" in obj else ()
    conversation = openai_messages(obj["messages"], "messages", issues, ending, tools)
    if conversation is not None and obj.get("parallel_tool_calls", True) is not True:
        check_one_call_per_turn(obj["parallel_tool_calls"], conversation, issues)
    model_turns = [t for t in conversation.turns if t.role == "model"] if conversation else []
    if model_turns and all(t.weight == 0 for t in model_turns):
        issues.warning(
            "messages", "every assistant message has weight 0, so the example teaches nothing"
        )
    item = {k: v for k, v in obj.items() if k not in OPENAI_CHAT_FIELDS}
    if conversation is not None and allow_prompt_only and item:
        return replace(conversation, item_json=json.dumps(item, sort_keys=True))
    return conversation


OPENAI_CHAT_FIELDS = ("messages", "tools", "parallel_tool_calls")


def check_one_call_per_turn(
    parallel: object, conversation: Conversation, issues: LineIssues
) -> None:
    """``"parallel_tool_calls": false``: no assistant message calls more than one function."""
    if parallel is not False:
        issues.error("parallel_tool_calls", f"expected true or false; found {found(parallel)}")
        return
    for turn in conversation.turns:
        if len(turn.tool_calls) > 1:
            issues.error(
                "parallel_tool_calls",
                f"is false, but an assistant message makes {len(turn.tool_calls)} calls",
            )
            return


def parse_openai_preference(
    obj: dict, issues: LineIssues, allow_prompt_only: bool
) -> Example | None:
    prompt = None
    if issues.missing(obj, "input", "", '{"messages": [...]}: the prompt'):
        given = issues.object_of(obj["input"], "input", 'an object like {"messages": [...]}')
        if given is not None and issues.missing(
            given, "messages", "input", "the prompt's messages"
        ):
            prompt = openai_messages(given["messages"], "input.messages", issues, "user")
    chosen = rejected = None
    if issues.missing(obj, "preferred_output", "", f"the preferred response: {OPENAI_RESPONSE}"):
        chosen = openai_response(obj["preferred_output"], "preferred_output", issues)
    if issues.missing(obj, "non_preferred_output", "", f"the rejected response: {OPENAI_RESPONSE}"):
        rejected = openai_response(obj["non_preferred_output"], "non_preferred_output", issues)
    if prompt is None or chosen is None or rejected is None or issues.has_errors:
        return None
    return PreferenceExample(prompt, chosen, rejected)


# --- prompt / completion and prompt / chosen / rejected --------------------------------------


def text_field(obj: dict, key: str, issues: LineIssues) -> str | None:
    return issues.non_empty(issues.string_of(obj[key], key), key)


def parse_prompt_completion(
    obj: dict, issues: LineIssues, allow_prompt_only: bool
) -> Example | None:
    prompt_key, completion_key = next(
        (pair for pair in PROMPT_COMPLETION_KEYS if pair[0] in obj or pair[1] in obj),
        PROMPT_COMPLETION_KEYS[0],
    )
    prompt = completion = None
    if issues.missing(obj, prompt_key, "", "the prompt text"):
        prompt = text_field(obj, prompt_key, issues)
    if completion_key in obj:
        completion = text_field(obj, completion_key, issues)
    elif not allow_prompt_only:
        issues.error(
            completion_key,
            f'missing "{completion_key}"; a supervised example needs the response to learn',
        )
    if prompt is None or issues.has_errors:
        return None
    turns = (Turn("user", prompt),) + ((Turn("model", completion),) if completion else ())
    return Conversation(turns)


def preference_text(obj: dict, key: str, issues: LineIssues, meaning: str) -> str | None:
    if not issues.missing(obj, key, "", f"the {meaning} response (a string)"):
        return None
    if isinstance(obj[key], list):
        return openai_response(obj[key], key, issues)
    return text_field(obj, key, issues)


def parse_prompt_chosen_rejected(
    obj: dict, issues: LineIssues, allow_prompt_only: bool
) -> Example | None:
    prompt = None
    if issues.missing(obj, "prompt", "", PROMPT):
        if isinstance(obj["prompt"], list):
            prompt = openai_messages(obj["prompt"], "prompt", issues, "user")
        elif not isinstance(obj["prompt"], str):
            issues.error("prompt", f"expected {PROMPT}; found {found(obj['prompt'])}")
        else:
            text = text_field(obj, "prompt", issues)
            prompt = Conversation((Turn("user", text),)) if text is not None else None
    chosen = preference_text(obj, "chosen", issues, "preferred")
    rejected = preference_text(obj, "rejected", issues, "rejected")
    if prompt is None or chosen is None or rejected is None or issues.has_errors:
        return None
    return PreferenceExample(prompt, chosen, rejected)


Parser = Callable[[dict, LineIssues, bool], Example | None]

PARSERS: dict[DatasetFormat, Parser] = {
    DatasetFormat.VERTEX_SFT: parse_vertex_sft,
    DatasetFormat.OPENAI_CHAT: parse_openai_chat,
    DatasetFormat.PROMPT_COMPLETION: parse_prompt_completion,
    DatasetFormat.OPENAI_PREFERENCE: parse_openai_preference,
    DatasetFormat.VERTEX_PREFERENCE: parse_vertex_preference,
    DatasetFormat.PROMPT_CHOSEN_REJECTED: parse_prompt_chosen_rejected,
}


def parse_example(
    obj: dict, fmt: DatasetFormat, *, line: int = 0, allow_prompt_only: bool = False
) -> tuple[Example | None, list[Problem]]:
    """Parse one line's object in format ``fmt``: the example (None on any error) and problems.

    ``allow_prompt_only`` lets a supervised conversation end with a user turn (distillation
    prompts, whose responses the teacher writes).
    """
    issues = LineIssues(line)
    example = PARSERS[fmt](obj, issues, allow_prompt_only)
    return (None if issues.has_errors else example), issues.problems
