"""Function calling when serving: the grammar a request's rows decode under, and the calls read
back out of what the model wrote, in its template's own syntax (``data.tool_calls``).

With tool_choice "auto" the model decides whether to call; once it writes the syntax's marker
(``<tool_call>``) the rest of its turn is held to calls of the declared functions with
arguments that match their schemas (OpenAI's strict function calling, Gemini's VALIDATED mode),
and comes back as those calls (finish reason ``tool_calls``). With "required" (or a named
function) the grammar holds the turn from its first token. A template that writes bare JSON
calls, with no marker, is held only under "required".
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tuneforge.data.records import Conversation, ToolCall
from tuneforge.data.tool_calls import ToolSyntax, tool_syntax
from tuneforge.inference.types import (
    Completion,
    FinishReason,
    GenerationParams,
    GenerationResult,
    TextStream,
    held_back,
)

if TYPE_CHECKING:
    from tuneforge.inference.structured import Constraint


def row_constraint(
    tokenizer: Any, prompt: Conversation, params: GenerationParams
) -> Constraint | None:
    """What holds a request's rows as they decode, or None when they decode freely."""
    from tuneforge.inference.structured import Constraint, grammar_for, tool_call_grammar

    if params.json_schema is not None:
        return Constraint(grammar_for(params.json_schema))
    if not prompt.tools:
        return None
    syntax = tool_syntax(tokenizer)
    parallel = params.parallel_tool_calls
    if params.tool_choice == "required":
        allowed = set(params.tool_names)
        functions = tuple(f for f in prompt.tools if not allowed or f.name in allowed)
        return Constraint(tool_call_grammar(syntax, functions, parallel))
    if not syntax.marker:
        return None
    grammar = tool_call_grammar(syntax, prompt.tools, parallel, after_marker=True)
    return Constraint(grammar, trigger=syntax.marker)


def read_calls(tokenizer: Any, prompt: Conversation, completion: Completion) -> Completion:
    """``completion`` with the calls in its text as ``tool_calls``, when the prompt offered
    tools and the model finished writing them."""
    if not prompt.tools or completion.finish_reason != "stop":
        return completion  # cut short, a call may be half written: it stays text
    content, calls = tool_syntax(tokenizer).parse(completion.text)
    if not calls:
        return completion
    return replace(
        completion, text=content, tool_calls=_with_ids(calls), finish_reason="tool_calls"
    )


def read_result(tokenizer: Any, prompt: Conversation, result: GenerationResult) -> GenerationResult:
    """Every candidate of ``result`` through ``read_calls``."""
    if not prompt.tools:
        return result
    completions = [read_calls(tokenizer, prompt, c) for c in result.completions]
    return replace(result, completions=completions)


def _with_ids(calls: list[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(replace(call, id=f"call_{uuid.uuid4().hex[:24]}") for call in calls)


def stream_calls(tokenizer: Any, prompt: Conversation, inner: TextStream) -> TextStream:
    """``inner``'s text deltas up to where calls begin; the calls, parsed once the turn ends,
    in the stream's ``tool_calls``. Without tools in the prompt, ``inner`` itself."""
    if not prompt.tools:
        return inner
    syntax = tool_syntax(tokenizer)
    calls: list[ToolCall] = []

    def deltas() -> Generator[str, None, bool]:
        text, shown = "", 0  # everything so far; how much of it went out as content
        for delta in inner:
            text += delta
            start = _call_start(text, syntax)
            end = len(text) - held_back(text, (syntax.marker,)) if start is None else start
            if end > shown:
                yield text[shown:end]
                shown = end
        if inner.finish_reason == "stop":
            calls.extend(_with_ids(syntax.parse(text)[1]))
        if not calls and len(text) > shown:  # no call after all: what was held back is text
            yield text[shown:]
        return False

    def finish(_stopped: bool) -> tuple[FinishReason, int]:
        stream.tool_calls = calls
        reason: FinishReason = "tool_calls" if calls else inner.finish_reason or "stop"
        return reason, inner.output_tokens

    stream = TextStream(deltas(), inner.prompt_tokens, finish)
    stream.close = inner.close  # type: ignore[method-assign]  # stopping stops the generation
    return stream


def _call_start(text: str, syntax: ToolSyntax) -> int | None:
    """Where the calls begin in ``text``: its marker, or a bare JSON call's opening brace."""
    if syntax.marker:
        start = text.find(syntax.marker)
        return start if start >= 0 else None
    stripped = text.lstrip()
    return len(text) - len(stripped) if stripped.startswith("{") else None
