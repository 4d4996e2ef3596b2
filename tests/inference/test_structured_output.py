"""Structured output: every answer parses and matches its JSON schema, whatever the model, the
sampling, or the rows beside it in a batch."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.inference.test_mixed_batches import tuned
from tuneforge.data.records import Conversation, Turn
from tuneforge.errors import InvalidArgument
from tuneforge.inference.structured import grammar_for, schema_text
from tuneforge.inference.types import GenerationParams, Request

REVIEW = {
    "type": "object",
    "properties": {
        "label": {"enum": ["positive", "negative"]},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        "keywords": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["label", "confidence", "keywords"],
    "additionalProperties": False,
}
# The tiny models are near-random: a bounded schema (bounded integers, strings and arrays) is
# what lets every answer end within the budget rather than writing digits until cut off.
MAX_TOKENS = 160
PROMPT = Conversation((Turn("user", "review: a warm, funny film ->"),))


def held_out_prompts(sentiment, count: int = 100) -> list[Conversation]:
    """The test split's reviews without their answers."""
    return [
        Conversation(example.turns[:-1], system=example.system)
        for example in sentiment["test"][:count]
    ]


@pytest.mark.parametrize("which", ["base", "tuned"])
def test_a_hundred_held_out_answers_all_parse_and_match_the_schema(
    backend, base, adapters, sentiment, which
):
    target = base if which == "base" else tuned(base, adapters[0])
    params = GenerationParams(max_output_tokens=MAX_TOKENS, json_schema=schema_text(REVIEW))
    prompts = held_out_prompts(sentiment)
    assert len(prompts) == 100

    results = backend.generate_many([Request(target, prompt, params) for prompt in prompts])

    for result in results:
        completion = result.completions[0]
        assert completion.finish_reason == "stop", completion.text  # ended, not cut
        jsonschema.validate(json.loads(completion.text), REVIEW)
    # Unconstrained, the same model writes no JSON at all: the schema does the work.
    free = backend.generate(target, prompts[0], GenerationParams(max_output_tokens=MAX_TOKENS))
    with pytest.raises(json.JSONDecodeError):
        json.loads(free.completions[0].text)


def test_sampled_answers_and_several_candidates_match_too(backend, base):
    params = GenerationParams(
        temperature=1.3, n=4, max_output_tokens=MAX_TOKENS, json_schema=schema_text(REVIEW)
    )
    result = backend.generate(base, PROMPT, params)
    assert len(result.completions) == 4
    for completion in result.completions:
        jsonschema.validate(json.loads(completion.text), REVIEW)


def test_a_streamed_answer_is_constrained_as_well(backend, base):
    stream = backend.stream(
        base,
        PROMPT,
        GenerationParams(max_output_tokens=MAX_TOKENS, json_schema=schema_text(REVIEW)),
    )
    jsonschema.validate(json.loads("".join(stream)), REVIEW)


def test_an_unsupported_schema_is_refused_naming_the_parameter():
    with pytest.raises(InvalidArgument) as caught:
        grammar_for(schema_text({"type": "no-such-type"}), "response_format.json_schema")
    assert caught.value.param == "response_format.json_schema"
    assert "no-such-type" in str(caught.value)
