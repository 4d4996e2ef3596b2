"""TransformersBackend on the tiny base model: decoding, stop sequences, counts, streaming."""

from __future__ import annotations

import pytest

from tests.inference.conftest import PROMPTS
from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import prompt_ids
from tuneforge.errors import InvalidArgument
from tuneforge.inference.types import GenerationParams

GREEDY = GenerationParams(max_output_tokens=24)


def sampled(seed: int | None, n: int = 1) -> GenerationParams:
    return GenerationParams(temperature=1.0, max_output_tokens=16, seed=seed, n=n)


def texts(result) -> list[str]:
    return [c.text for c in result.completions]


def ascii_stop(text: str) -> str:
    """Two plain characters from the middle of ``text``, to use as a stop sequence."""
    for start in range(6, len(text) - 2):
        piece = text[start : start + 2]
        if piece.isascii() and piece.isprintable() and not piece.isspace():
            return piece
    raise AssertionError(f"no plain characters to stop at in {text!r}")


def test_greedy_is_deterministic(backend, base):
    first = backend.generate(base, PROMPTS[0], GREEDY)
    second = backend.generate(base, PROMPTS[0], GREEDY)
    assert first == second
    assert first.completions[0].text


def test_seeded_sampling_is_reproducible_and_seeds_differ(backend, base):
    one = backend.generate(base, PROMPTS[0], sampled(seed=1))
    again = backend.generate(base, PROMPTS[0], sampled(seed=1))
    other = backend.generate(base, PROMPTS[0], sampled(seed=2))
    assert one == again
    assert texts(one) != texts(other)
    assert texts(one) != texts(backend.generate(base, PROMPTS[0], GREEDY))


def test_stop_sequence_cuts_the_text_and_stops_early(backend, base):
    full = backend.generate(base, PROMPTS[1], GREEDY).completions[0].text
    stop = ascii_stop(full)
    params = GenerationParams(max_output_tokens=24, stop=("never appears", stop))
    result = backend.generate(base, PROMPTS[1], params).completions[0]
    assert result.text == full[: full.find(stop)]
    assert result.finish_reason == "stop"
    assert result.output_tokens < 24  # generation ended at the stop, not at the limit


def test_max_output_tokens_gives_length(backend, base):
    completion = backend.generate(base, PROMPTS[0], GenerationParams(max_output_tokens=5))
    (only,) = completion.completions
    assert (only.finish_reason, only.output_tokens) == ("length", 5)


def test_token_counts_match_the_tokenizer(backend, base, tokenizer):
    for prompt in PROMPTS:
        result = backend.generate(base, prompt, GenerationParams(max_output_tokens=7))
        assert result.prompt_tokens == len(prompt_ids(prompt, tokenizer))
        assert result.completions[0].output_tokens == 7
        assert result.output_tokens == 7


def test_n_candidates(backend, base):
    greedy = backend.generate(base, PROMPTS[0], GenerationParams(max_output_tokens=8, n=3))
    assert len(greedy.completions) == 3 and len(set(texts(greedy))) == 1
    sampled_three = backend.generate(base, PROMPTS[0], sampled(seed=5, n=3))
    assert len(sampled_three.completions) == 3 and len(set(texts(sampled_three))) > 1
    assert sampled_three == backend.generate(base, PROMPTS[0], sampled(seed=5, n=3))


def test_batch_matches_single_requests(backend, base):
    singles = [backend.generate(base, prompt, GREEDY) for prompt in PROMPTS]
    assert backend.generate_batch(base, PROMPTS, GREEDY) == singles
    seeded = [backend.generate(base, prompt, sampled(seed=9)) for prompt in PROMPTS]
    assert backend.generate_batch(base, PROMPTS, sampled(seed=9)) == seeded


def test_stream_joins_to_the_greedy_text(backend, base):
    for prompt in PROMPTS:
        expected = backend.generate(base, prompt, GREEDY).completions[0].text
        pieces = list(backend.stream(base, prompt, GREEDY))
        assert "".join(pieces) == expected
        assert len(pieces) > 1


def test_stream_stops_at_a_stop_sequence(backend, base):
    full = backend.generate(base, PROMPTS[1], GREEDY).completions[0].text
    stop = ascii_stop(full)
    params = GenerationParams(max_output_tokens=24, stop=(stop,))
    assert "".join(backend.stream(base, PROMPTS[1], params)) == full[: full.find(stop)]


def test_a_stream_left_unread_ends_its_generation(backend, base):
    stream = backend.stream(base, PROMPTS[0], GenerationParams(max_output_tokens=200))
    next(stream)
    stream.close()  # cancels and joins the generation thread
    assert backend.generate(base, PROMPTS[0], GREEDY).completions  # the model lock is free


def test_rejects_a_prompt_that_does_not_end_with_a_user_turn(backend, base):
    answered = Conversation((Turn("user", "hi"), Turn("model", "hello")))
    with pytest.raises(InvalidArgument, match="user turn"):
        backend.generate(base, answered, GREEDY)
    with pytest.raises(InvalidArgument):
        backend.stream(base, answered, GREEDY)


def test_rejects_a_prompt_longer_than_the_context(backend, base):
    long_prompt = Conversation((Turn("user", "word " * 600),))
    with pytest.raises(InvalidArgument, match="at most"):
        backend.generate(base, long_prompt, GREEDY)


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", -0.1), ("top_p", 0.0), ("top_k", -1), ("max_output_tokens", 0), ("n", 0)],
)
def test_generation_params_are_checked(field, value):
    with pytest.raises(InvalidArgument) as raised:
        GenerationParams(**{field: value})
    assert raised.value.param == field
