"""How a model writes function calls, learned from its own chat template, and reading them back
out of what it generates.

Templates write calls differently: Qwen 2.5, Hermes and tuneforge's tiny models wrap each call's
JSON in ``<tool_call>`` tags, Llama 3.1 writes the bare JSON with "parameters" for "arguments".
Rather than keep a parser per model family (as vLLM does), :func:`tool_syntax` renders a probe
conversation with one and with two calls through the template and reads off what surrounds each
call's JSON, the key of its arguments and its separators. What a template cannot express (it
ignores ``tools``, or writes no calls) is an InvalidArgument naming the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tuneforge.data.records import ToolCall
from tuneforge.errors import InvalidArgument

PROBE_NAME = "probe_function_7f3a"
PROBE_ARGUMENT = "probe_argument"
PROBE_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": PROBE_NAME,
            "description": "",
            "parameters": {"type": "object", "properties": {PROBE_ARGUMENT: {"type": "string"}}},
        },
    }
]
PROBE_USER = {"role": "user", "content": "probe"}


@dataclass(frozen=True)
class ToolSyntax:
    """A template's way of writing a model turn's calls: ``prefix``, each call's JSON with
    ``joint`` between two, then ``suffix``."""

    prefix: str  # e.g. "<tool_call>"; "" when a call is bare JSON
    suffix: str  # e.g. "</tool_call>", before the end of the turn
    joint: str | None  # e.g. "</tool_call><tool_call>"; None: the template cannot write two
    arguments_key: str  # "arguments", or "parameters" (Llama 3.1)
    item_separator: str  # how the template's JSON separates items: ", " or ","
    key_separator: str  # and a key from its value: ": " or ":"

    @property
    def marker(self) -> str:
        return self.prefix.strip()

    def parse(self, text: str) -> tuple[str, list[ToolCall]]:
        """The text before the calls, and the calls; ``(text, [])`` when the text holds no
        call, or holds one that does not parse (then the model wrote text, not a call)."""
        if self.marker:
            start = text.find(self.marker)
            if start < 0:
                return text, []
            content, rest = text[:start], text[start:]
        else:
            content, rest = "", text
        calls: list[ToolCall] = []
        decoder = json.JSONDecoder()
        while rest.strip():
            body = rest.lstrip()
            if self.marker:
                if not body.startswith(self.marker):
                    return text, []
                body = body[len(self.marker) :].lstrip()
            try:
                value, end = decoder.raw_decode(body)
            except ValueError:
                return text, []
            call = self._call(value)
            if call is None:
                return text, []
            calls.append(call)
            rest = body[end:].lstrip()
            if self.suffix.strip() and rest.startswith(self.suffix.strip()):
                rest = rest[len(self.suffix.strip()) :]
        return content.strip(), calls

    def _call(self, value: Any) -> ToolCall | None:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return None
        arguments = value.get(self.arguments_key, value.get("arguments", {}))
        if isinstance(arguments, str):  # some templates write the arguments as JSON text
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return None
        if not isinstance(arguments, dict):
            return None
        return ToolCall(value["name"], json.dumps(arguments, separators=(",", ":")))


def template_messages(calls: list[ToolCall]) -> dict[str, Any]:
    """An assistant message calling ``calls``, as ``apply_chat_template`` takes it."""
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "type": "function",
                "id": call.id or f"call_{index}",
                "function": {"name": call.name, "arguments": json.loads(call.arguments)},
            }
            for index, call in enumerate(calls)
        ],
    }


def tool_syntax(tokenizer: Any) -> ToolSyntax:
    """The syntax of ``tokenizer``'s chat template; errors name the model it came with."""
    return _syntax_of(tokenizer.chat_template, tokenizer, tokenizer.name_or_path or "the model")


@lru_cache(maxsize=32)
def _syntax_of(template: str, tokenizer: Any, model: str) -> ToolSyntax:
    def render(messages: list[dict], tools: list | None, prompt: bool = False) -> str:
        return tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=prompt
        )

    unsupported = f"the chat template of {model} does not support tools"
    prompt = render([PROBE_USER], PROBE_TOOLS, prompt=True)
    if prompt == render([PROBE_USER], None, prompt=True):
        raise InvalidArgument(f"{unsupported}: it does not show the model its tools", "tools")
    one = [ToolCall(PROBE_NAME, json.dumps({PROBE_ARGUMENT: "first"}))]
    two = [*one, ToolCall(PROBE_NAME, json.dumps({PROBE_ARGUMENT: "second"}))]
    written = _after(prompt, render([PROBE_USER, template_messages(one)], PROBE_TOOLS))
    found = _json_objects(written or "")
    if not found:
        raise InvalidArgument(f"{unsupported}: it does not write the model's calls", "tools")
    (start, end, value), eos = found[0], tokenizer.eos_token or ""
    arguments_key = next((k for k in ("arguments", "parameters") if k in value), "arguments")
    suffix = written[end:].split(eos)[0] if eos else written[end:]
    two_written = _after(prompt, render([PROBE_USER, template_messages(two)], PROBE_TOOLS))
    both = _json_objects(two_written)
    joint = two_written[both[0][1] : both[1][0]] if two_written and len(both) == 2 else None
    call_json = written[start:end]
    return ToolSyntax(
        prefix=written[:start],
        suffix=suffix.rstrip(),
        joint=joint,
        arguments_key=arguments_key,
        item_separator=", " if '", "' in call_json else ",",
        key_separator=": " if '": ' in call_json else ":",
    )


def _after(prompt: str, full: str) -> str | None:
    """What ``full`` adds to the generation ``prompt``: the model's turn."""
    return full[len(prompt) :] if full.startswith(prompt) else None


def _json_objects(text: str | None) -> list[tuple[int, int, dict]]:
    """The probe's calls in ``text``: (start, end, object) of each JSON object naming it."""
    if not text:
        return []
    decoder, found, position = json.JSONDecoder(), [], 0
    while (start := text.find("{", position)) >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        if isinstance(value, dict) and value.get("name") == PROBE_NAME:
            found.append((start, end, value))
            position = end
        else:
            position = start + 1
    return found
