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


def tool_call_grammar(syntax: ToolSyntax, functions: tuple[Function, ...], parallel: bool) -> str:
    """The llguidance grammar of a model turn that is nothing but calls, written the way the
    model's template writes them (its tags and JSON separators), each naming one of
    ``functions`` with arguments that match its parameters: tool_choice "required" or a named
    function. One call, or with ``parallel`` up to MAX_CALLS_PER_TURN."""
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
        f"start: {json.dumps(syntax.prefix)} call{more} {json.dumps(syntax.suffix)}\n"
        f"call: %json {json.dumps({'x-guidance': options, 'anyOf': calls})}\n"
    )
    grammar = LLMatcher.grammar_from_lark(lark)
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise InvalidArgument(
            f"tools: a parameters schema is not supported: {messages[0]}", "tools"
        )
    return grammar


class GrammarConstraint:
    """A logits processor: every row's next token keeps its text a prefix of a sentence of the
    grammar (``grammar_for`` a schema, or ``tool_call_grammar``). Rows that finished (EOS, then
    padding) are left alone."""

    def __init__(self, tokenizer: Any, grammar: str) -> None:
        self.tokenizer = tokenizer
        self.grammar = grammar
        self._matchers: list[Any] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        from llguidance import LLMatcher
        from llguidance.torch import allocate_token_bitmask, fill_next_token_bitmask

        rows, vocab_size = scores.shape
        if self._matchers is None:  # the model's vocabulary may be padded past the tokenizer's
            ll_tokenizer = _ll_tokenizer(self.tokenizer, vocab_size)
            self._matchers = [LLMatcher(ll_tokenizer, self.grammar) for _ in range(rows)]
        else:
            for row, matcher in enumerate(self._matchers):
                if not matcher.is_stopped():
                    matcher.consume_token(int(input_ids[row, -1]))
        bitmask = allocate_token_bitmask(rows, vocab_size)
        for row, matcher in enumerate(self._matchers):
            fill_next_token_bitmask(matcher, bitmask, row)
        allowed = _unpack(bitmask, vocab_size).to(scores.device)
        return scores.masked_fill(~allowed, float("-inf"))


def _unpack(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """llguidance's 32 tokens per int32 as one bool per token. (Its own helper compiles a
    kernel with torch.compile, which a CPU server should not wait for.)"""
    import torch

    bits = torch.arange(32, dtype=torch.int32)
    allowed = (bitmask.unsqueeze(-1) >> bits) & 1
    return allowed.view(bitmask.shape[0], -1)[:, :vocab_size].bool()
