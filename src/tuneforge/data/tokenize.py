"""Render canonical examples with a model's chat template and mark the tokens that carry loss.

The mask is found from the rendered text, so it works with any chat template: the text a model
turn adds is what ``render(turns[:i+1])`` has beyond ``render(turns[:i], add_generation_prompt)``
(the turn's content, its calls and its end-of-turn marker). Tokens whose characters fall in such
a span of a turn with weight 1 get labels; every other token (system, tools, user, tool results,
template markup, weight-0 turns) gets IGNORE_INDEX. A conversation's tools reach the template as
``apply_chat_template(tools=...)``, the model's own way of showing them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from tuneforge.data.records import Conversation, PreferenceExample, Turn
from tuneforge.data.tool_calls import template_messages, tool_syntax

IGNORE_INDEX = -100
CHAT_ROLES = {"user": "user", "model": "assistant", "tool": "tool"}


@dataclass(frozen=True, slots=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where the token carries no loss
    truncated: bool = False

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def chat_messages(
    conversation: Conversation, pages: dict[int, int] | None = None
) -> list[dict[str, Any]]:
    """The conversation as the ``messages`` list that ``apply_chat_template`` takes. A turn
    with media has a list of parts as its content, as processors' templates take it: one
    ``{"type": "image"}`` per image and per page of a document (``pages``: a document's page
    count by its index in ``conversation.media``; 1 when not given), ``{"type": "audio"}`` per
    audio, then its text."""
    messages = [{"role": "system", "content": conversation.system}] if conversation.system else []
    index = 0
    for turn in conversation.turns:
        message = _message(turn)
        if turn.media:
            parts: list[dict[str, Any]] = []
            for media in turn.media:
                slots = (pages or {}).get(index, 1) if media.kind == "document" else 1
                part_type = "audio" if media.kind == "audio" else "image"
                parts += [{"type": part_type} for _ in range(slots)]
                index += 1
            text = [{"type": "text", "text": turn.text}] if turn.text else []
            message["content"] = [*parts, *text]
        messages.append(message)
    return messages


def text_conversation(messages: list[dict[str, str]]) -> Conversation:
    """Plain chat messages ({"role", "content"}) back as a conversation: system and developer
    messages make its system instruction, assistant messages are the model's turns."""
    system = "\n".join(m["content"] for m in messages if m["role"] in ("system", "developer"))
    turns = tuple(
        Turn("model" if m["role"] == "assistant" else "user", m["content"])
        for m in messages
        if m["role"] not in ("system", "developer")
    )
    return Conversation(turns=turns, system=system or None)


def _message(turn: Turn) -> dict[str, Any]:
    if turn.tool_calls:
        return {**template_messages(list(turn.tool_calls)), "content": turn.text}
    if turn.role == "tool" and turn.call is not None:
        call = turn.call
        return {"role": "tool", "content": turn.text, "tool_call_id": call.id, "name": call.name}
    return {"role": CHAT_ROLES[turn.role], "content": turn.text}


def chat_tools(conversation: Conversation) -> list[dict[str, Any]] | None:
    """The conversation's functions as ``apply_chat_template``'s ``tools``; None without any."""
    if not conversation.tools:
        return None
    return [
        {
            "type": "function",
            "function": {
                "name": f.name,
                "description": f.description,
                "parameters": json.loads(f.parameters),
            },
        }
        for f in conversation.tools
    ]


class Renderer:
    """Renders one conversation's messages, or a leading part of them, with its tools."""

    def __init__(self, tokenizer, conversation: Conversation) -> None:
        self.tokenizer = tokenizer
        self.tools = chat_tools(conversation)
        if self.tools:  # a template that ignores tools would drop them without a word
            tool_syntax(tokenizer)

    def __call__(self, messages: list[dict[str, Any]], generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=self.tools, tokenize=False, add_generation_prompt=generation_prompt
        )


def _model_turn_spans(tokenizer, conversation: Conversation) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of the model turns that carry loss."""
    messages = chat_messages(conversation)
    render = Renderer(tokenizer, conversation)
    offset = len(messages) - len(conversation.turns)  # 1 when there is a system message
    full = render(messages)
    spans = []
    for index, turn in enumerate(conversation.turns):
        if turn.role != "model" or not turn.weight:
            continue
        position = offset + index
        before = render(messages[:position], generation_prompt=True)
        through = render(messages[: position + 1])
        if full.startswith(through) and through.startswith(before):
            spans.append((len(before), len(through)))
        else:  # a template that rewrites earlier turns: find the content itself
            start = full.find(turn.text, spans[-1][1] if spans else 0)
            spans.append((start, start + len(turn.text) + len(tokenizer.eos_token or "")))
    return full, spans


def tokenize_conversation(
    conversation: Conversation, tokenizer, max_length: int | None = None
) -> TokenizedExample:
    text, spans = _model_turn_spans(tokenizer, conversation)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids: list[int] = encoded["input_ids"]
    labels = [IGNORE_INDEX] * len(input_ids)
    # A token is trained when its characters overlap a model span: the first token of a turn
    # may begin in the template's markup (" negative" after "Assistant:").
    span_index = 0
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        if span_index < len(spans) and end > spans[span_index][0]:
            labels[position] = input_ids[position]
    truncated = max_length is not None and len(input_ids) > max_length
    if truncated:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return TokenizedExample(input_ids=input_ids, labels=labels, truncated=truncated)


def prompt_ids(conversation: Conversation, tokenizer) -> list[int]:
    """Token ids of a prompt conversation followed by the template's generation prompt."""
    render = Renderer(tokenizer, conversation)
    text = render(chat_messages(conversation), generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prompt_token_runs(conversation: Conversation, tokenizer) -> list[list[int]]:
    """The conversation's token ids as the model reads them, cut into one run per turn: each
    run ends with its turn's closing markup, the system instruction counts with the first turn,
    and the generation prompt (after a closing user turn) with the last. For a prompt, the runs
    joined are ``prompt_ids``."""
    messages = chat_messages(conversation)
    render = Renderer(tokenizer, conversation)
    offset = len(messages) - len(conversation.turns)  # 1 when there is a system message
    text = render(messages, generation_prompt=conversation.is_prompt_only)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ends, cursor = [], 0
    for index, turn in enumerate(conversation.turns):
        through = render(messages[: offset + index + 1])
        if text.startswith(through) and len(through) >= cursor:
            cursor = len(through)
        else:  # a template that rewrites earlier turns: end at the turn's own text
            start = text.find(turn.text, cursor)
            cursor = start + len(turn.text) if start >= 0 else cursor
        ends.append(cursor)
    ends[-1] = len(text)
    runs: list[list[int]] = [[] for _ in conversation.turns]
    turn = 0
    for token_id, (start, _end) in zip(
        encoded["input_ids"], encoded["offset_mapping"], strict=True
    ):
        while turn < len(ends) - 1 and start >= ends[turn]:
            turn += 1
        runs[turn].append(token_id)
    return runs


def count_tokens(example: Conversation | PreferenceExample, tokenizer) -> tuple[int, int]:
    """(input tokens, output tokens) of an example as the model sees it.

    Output tokens are those of the model turns (for a preference example, the chosen response);
    input tokens are all the others, template markup included.
    """
    conversation = counted_conversation(example)
    tokenized = tokenize_conversation(conversation, tokenizer)
    model_tokens = sum(1 for label in tokenized.labels if label != IGNORE_INDEX)
    if conversation.is_prompt_only:
        return len(tokenized.input_ids), 0
    return len(tokenized.input_ids) - model_tokens, model_tokens


def counted_conversation(example: Conversation | PreferenceExample) -> Conversation:
    """The conversation an example's tokens are counted on: a preference example's prompt with
    its chosen response."""
    if isinstance(example, PreferenceExample):
        return with_response(example.prompt, example.chosen)
    return example


def with_response(prompt: Conversation, response: str) -> Conversation:
    return replace(prompt, turns=(*prompt.turns, Turn("model", response)))


BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte tokens


def token_bytes(tokenizer, ids: list[int]) -> list[bytes]:
    """Each token's own bytes. Decoding one token alone gives U+FFFD for part of a multibyte
    character; a byte-level BPE token's characters stand for bytes (GPT-2's table), and a
    SentencePiece byte token is written ``<0xE9>``. Anything else is its decoded text."""
    table = _byte_level_table()
    pieces = []
    for token_id, token in zip(ids, tokenizer.convert_ids_to_tokens(ids), strict=True):
        if token is not None and (match := BYTE_FALLBACK.fullmatch(token)):
            pieces.append(bytes([int(match.group(1), 16)]))
        elif token is not None and all(char in table for char in token):
            pieces.append(bytes(table[char] for char in token))
        else:
            pieces.append(tokenizer.decode([token_id]).encode("utf-8", "surrogatepass"))
    return pieces


@cache
def _byte_level_table() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}
