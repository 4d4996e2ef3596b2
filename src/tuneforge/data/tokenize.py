"""Render canonical examples with a model's chat template and mark the tokens that carry loss.

The mask is found from the rendered text, so it works with any chat template: the text a model
turn adds is what ``render(turns[:i+1])`` has beyond ``render(turns[:i], add_generation_prompt)``
(the turn's content and its end-of-turn marker). Tokens whose characters fall in such a span of
a turn with weight 1 get labels; every other token (system, user, template markup, weight-0
turns) gets IGNORE_INDEX.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.data.records import Conversation, PreferenceExample

IGNORE_INDEX = -100
CHAT_ROLES = {"user": "user", "model": "assistant"}


@dataclass(frozen=True, slots=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where the token carries no loss
    truncated: bool = False

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def chat_messages(conversation: Conversation) -> list[dict[str, str]]:
    """The conversation as the ``messages`` list that ``apply_chat_template`` takes."""
    messages = [{"role": "system", "content": conversation.system}] if conversation.system else []
    messages += [{"role": CHAT_ROLES[t.role], "content": t.text} for t in conversation.turns]
    return messages


def _render(tokenizer, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def _model_turn_spans(tokenizer, conversation: Conversation) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of the model turns that carry loss."""
    messages = chat_messages(conversation)
    offset = len(messages) - len(conversation.turns)  # 1 when there is a system message
    full = _render(tokenizer, messages)
    spans = []
    for index, turn in enumerate(conversation.turns):
        if turn.role != "model" or not turn.weight:
            continue
        position = offset + index
        before = _render(tokenizer, messages[:position], generation_prompt=True)
        through = _render(tokenizer, messages[: position + 1])
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
    text = _render(tokenizer, chat_messages(conversation), generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prompt_token_runs(conversation: Conversation, tokenizer) -> list[list[int]]:
    """``prompt_ids`` cut into one run per turn: a run ends where its turn's text ends, so the
    template's markup (and the system instruction) falls in the run of the turn it precedes,
    and the generation prompt in the last. Joined, the runs are ``prompt_ids``."""
    text = _render(tokenizer, chat_messages(conversation), generation_prompt=True)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ends, cursor = [], 0
    for turn in conversation.turns:
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
    if isinstance(example, PreferenceExample):
        conversation = with_response(example.prompt, example.chosen)
    else:
        conversation = example
    tokenized = tokenize_conversation(conversation, tokenizer)
    model_tokens = sum(1 for label in tokenized.labels if label != IGNORE_INDEX)
    if conversation.is_prompt_only:
        return len(tokenized.input_ids), 0
    return len(tokenized.input_ids) - model_tokens, model_tokens


def with_response(prompt: Conversation, response: str) -> Conversation:
    from tuneforge.data.records import Turn

    return Conversation(turns=(*prompt.turns, Turn("model", response)), system=prompt.system)
