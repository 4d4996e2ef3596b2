"""A stream reports, once read, the finish reason and token counts the whole completion has."""

from __future__ import annotations

import pytest

from tests.inference.conftest import PROMPTS
from tuneforge.inference.types import GenerationParams


def read(stream) -> str:
    return "".join(stream)


@pytest.mark.parametrize("max_tokens", [2, 200])
def test_stream_finish_and_counts_match_generate(backend, base, max_tokens):
    params = GenerationParams(max_output_tokens=max_tokens)
    whole = backend.generate(base, PROMPTS[0], params)
    stream = backend.stream(base, PROMPTS[0], params)
    assert stream.finish_reason is None
    assert read(stream) == whole.completions[0].text
    assert stream.finish_reason == whole.completions[0].finish_reason
    assert (stream.prompt_tokens, stream.output_tokens) == (
        whole.prompt_tokens,
        whole.completions[0].output_tokens,
    )


def test_a_cut_stream_finishes_with_length(backend, base):
    stream = backend.stream(base, PROMPTS[0], GenerationParams(max_output_tokens=1))
    read(stream)
    assert (stream.finish_reason, stream.output_tokens) == ("length", 1)


def test_a_stop_sequence_finishes_with_stop(backend, base):
    full = backend.generate(base, PROMPTS[1], GenerationParams(max_output_tokens=24))
    text = full.completions[0].text
    stop = next(ch for ch in text[3:] if ch.isascii() and ch.strip())
    params = GenerationParams(max_output_tokens=24, stop=(stop,))
    stream = backend.stream(base, PROMPTS[1], params)
    assert read(stream) == text[: text.find(stop)]
    assert stream.finish_reason == "stop"
