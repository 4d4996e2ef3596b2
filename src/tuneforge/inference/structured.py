"""Structured output: JSON that always parses and matches a JSON schema, and function calls
that name a declared function with arguments that match its schema, by grammar-constrained
decoding with llguidance (the library vLLM's "guidance" backend uses), not by retries.

At each step a logits processor asks each row's matcher which tokens may come next and masks
the rest, so whatever the model or the sampling, the text is a prefix of a valid document and
EOS is allowed only once the document is complete. JSON is compact (no free whitespace): a
weak model would otherwise spend its budget on spaces. An answer cut by ``max_output_tokens``
can still end mid-document, with finish reason ``length``, as the hosted services' do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tuneforge.data.json_schema import check_depth
from tuneforge.data.records import Function
from tuneforge.data.tool_calls import ToolSyntax
from tuneforge.errors import InvalidArgument

if TYPE_CHECKING:  # the API checks schemas with this module, and must not load torch for it
    import torch

JSON_OPTIONS = {"whitespace_flexible": False}
ANY_JSON_OBJECT = json.dumps({"type": "object"})


def schema_text(schema: Any, param: str = "json_schema") -> str:
    """A schema as the compact JSON text that GenerationParams carries (hashable). Key order is
    kept: the output's properties come in the schema's order (a "reasoning" field before an
    "answer" one means what it says). A schema nested deeper than MAX_SCHEMA_DEPTH is an
    InvalidArgument naming ``param``."""
    check_depth(schema, param)
    return json.dumps(schema, separators=(",", ":"))


@lru_cache(maxsize=256)
def grammar_for(schema: str, param: str = "json_schema") -> str:
    """The llguidance grammar of a JSON schema; a schema it cannot compile is an
    InvalidArgument naming ``param``."""
    from llguidance import LLMatcher

    try:
        grammar = LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)
    except ValueError as err:
        raise InvalidArgument(f"{param}: not a JSON schema: {err}", param) from None
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise InvalidArgument(f"{param}: unsupported JSON schema: {messages[0]}", param)
    return grammar


@lru_cache(maxsize=16)
def _ll_tokenizer(tokenizer: Any, vocab_size: int) -> Any:
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)


# Calls in one turn under a grammar: enough for any task we know of, and a bound on a model
# that would otherwise call for as long as its budget lasts.
MAX_CALLS_PER_TURN = 8


@dataclass(frozen=True)
class Constraint:
    """What holds a row's decoding: its text must be a sentence of ``grammar``; with a
    ``trigger``, only what follows the trigger (the row writes freely until it writes that)."""

    grammar: str
    trigger: str | None = None


@lru_cache(maxsize=256)
def tool_call_grammar(
    syntax: ToolSyntax, functions: tuple[Function, ...], parallel: bool, after_marker: bool = False
) -> str:
    """The llguidance grammar of a model turn that is nothing but calls, written the way the
    model's template writes them (its tags and JSON separators), each naming one of
    ``functions`` with arguments that match its parameters: tool_choice "required" or a named
    function. One call, or with ``parallel`` up to MAX_CALLS_PER_TURN. ``after_marker``: the
    grammar of what follows the syntax's marker (``<tool_call>``), for a row that wrote it."""
    from llguidance import LLMatcher

    options = {
        "whitespace_flexible": False,
        "item_separator": syntax.item_separator,
        "key_separator": syntax.key_separator,
    }
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": function.name},
                syntax.arguments_key: json.loads(function.parameters),
            },
            "required": ["name", syntax.arguments_key],
            "additionalProperties": False,
        }
        for function in functions
    ]
    more = ""
    if parallel and syntax.joint is not None:
        more = f" ({json.dumps(syntax.joint)} call){{0,{MAX_CALLS_PER_TURN - 1}}}"
    lark = (
        f"start: {json.dumps(_opening(syntax, after_marker))} call{more}"
        f" {json.dumps(syntax.suffix)}\n"
        f"call: %json {json.dumps({'x-guidance': options, 'anyOf': calls})}\n"
    )
    grammar = LLMatcher.grammar_from_lark(lark)
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise InvalidArgument(
            f"tools: a parameters schema is not supported: {messages[0]}", "tools"
        )
    return grammar


def _opening(syntax: ToolSyntax, after_marker: bool) -> str:
    if not after_marker:
        return syntax.prefix
    return syntax.prefix[syntax.prefix.index(syntax.marker) + len(syntax.marker) :]


class GrammarConstraint:
    """A logits processor: every row's next token keeps its text a prefix of a sentence of the
    constraint's grammar (``grammar_for`` a schema, or ``tool_call_grammar``), from the first
    token or from where the row wrote the trigger. Rows that finished (EOS, then padding) are
    left alone."""

    def __init__(self, tokenizer: Any, constraint: Constraint) -> None:
        self.tokenizer = tokenizer
        self.constraint = constraint
        self._matchers: list[Any] | None = None  # None in a row still waiting for its trigger
        self._ll_tokenizer: Any = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        from llguidance.torch import allocate_token_bitmask, fill_next_token_bitmask

        rows, vocab_size = scores.shape
        if self._matchers is None:  # the model's vocabulary may be padded past the tokenizer's
            self._ll_tokenizer = _ll_tokenizer(self.tokenizer, vocab_size)
            waits = self.constraint.trigger is not None
            self._matchers = [None if waits else self._matcher() for _ in range(rows)]
        else:
            for row, matcher in enumerate(self._matchers):
                if matcher is None:
                    if self._triggered(input_ids[row]):
                        self._matchers[row] = self._matcher()
                elif not matcher.is_stopped():
                    matcher.consume_token(int(input_ids[row, -1]))
        free = [row for row, matcher in enumerate(self._matchers) if matcher is None]
        if len(free) == rows:
            return scores
        bitmask = allocate_token_bitmask(rows, vocab_size)
        for row, matcher in enumerate(self._matchers):
            if matcher is not None:
                fill_next_token_bitmask(matcher, bitmask, row)
        blocked = ~_unpack(bitmask, vocab_size).to(scores.device)
        blocked[free] = False  # rows still writing freely, before their trigger
        return scores.masked_fill(blocked, float("-inf"))

    def _matcher(self) -> Any:
        from llguidance import LLMatcher

        return LLMatcher(self._ll_tokenizer, self.constraint.grammar)

    def _triggered(self, ids: torch.Tensor) -> bool:
        """Whether the row's text now ends with the trigger: each of its characters is at
        least one byte, so the last ``len(trigger)`` tokens hold it."""
        trigger = self.constraint.trigger or ""
        tail = ids[-len(trigger) :].tolist()
        return self.tokenizer.decode(tail, skip_special_tokens=False).endswith(trigger)


def _unpack(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """llguidance's 32 tokens per int32 as one bool per token. (Its own helper compiles a
    kernel with torch.compile, which a CPU server should not wait for.)"""
    import torch

    bits = torch.arange(32, dtype=torch.int32)
    allowed = (bitmask.unsqueeze(-1) >> bits) & 1
    return allowed.view(bitmask.shape[0], -1)[:, :vocab_size].bool()
