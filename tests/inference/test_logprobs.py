"""Log probabilities of generated tokens: the model's own, checked against a plain forward pass
over the prompt and the answer, alone and in a mixed batch."""

from __future__ import annotations

import pytest
import torch

from tests.inference.conftest import PROMPTS
from tests.inference.test_mixed_batches import tuned
from tuneforge.data.tokenize import prompt_ids
from tuneforge.errors import InvalidArgument
from tuneforge.inference.types import GenerationParams, ModelTarget, Request

TOLERANCE = 1e-4  # float32 on any CPU; the values are around -1 to -10


def forward_logprobs(backend, target: ModelTarget, prompt, tokens: list[int]) -> torch.Tensor:
    """log p(token_i | prompt, tokens_<i) for each token, from one forward pass."""
    loaded = backend._cache.get(target)
    ids = prompt_ids(prompt, loaded.tokenizer)
    with loaded.using(target.adapter_path) as model, torch.inference_mode():
        logits = model(torch.tensor([ids + tokens])).logits[0].float()
    log_probs = torch.log_softmax(logits[len(ids) - 1 : -1], dim=-1)
    return log_probs, log_probs.gather(1, torch.tensor(tokens).unsqueeze(1)).squeeze(1)


def test_greedy_logprobs_are_the_models_and_the_chosen_token_is_the_likeliest(backend, base):
    params = GenerationParams(max_output_tokens=6, logprobs=3)
    completion = backend.generate(base, PROMPTS[1], params).completions[0]

    logprobs = completion.logprobs
    assert len(logprobs) == completion.output_tokens == 6
    tokens = [token.chosen.token_id for token in logprobs]
    full, expected = forward_logprobs(backend, base, PROMPTS[1], tokens)
    for step, token in enumerate(logprobs):
        assert token.chosen.logprob == pytest.approx(float(expected[step]), abs=TOLERANCE)
        assert [c.logprob for c in token.top] == sorted(
            (c.logprob for c in token.top), reverse=True
        )
        assert len(token.top) == 3 and token.top[0].token_id == token.chosen.token_id  # greedy
        top_ids = full[step].topk(3).indices.tolist()
        assert [c.token_id for c in token.top] == top_ids
    joined = b"".join(token.chosen.raw for token in logprobs)
    assert joined.decode(errors="replace") == completion.text


def test_sampled_logprobs_do_not_depend_on_the_temperature(backend, base):
    """The model's own probabilities, before temperature: what OpenAI and Vertex report."""
    params = GenerationParams(temperature=1.7, seed=3, max_output_tokens=5, logprobs=0)
    completion = backend.generate(base, PROMPTS[0], params).completions[0]
    tokens = [token.chosen.token_id for token in completion.logprobs]
    _, expected = forward_logprobs(backend, base, PROMPTS[0], tokens)
    assert [t.chosen.logprob for t in completion.logprobs] == pytest.approx(
        expected.tolist(), abs=TOLERANCE
    )
    assert all(token.top == [] for token in completion.logprobs)


def test_in_a_mixed_batch_each_row_gets_what_it_asked_for(backend, base, adapters):
    first, second = tuned(base, adapters[0]), tuned(base, adapters[1])
    requests = [
        Request(first, PROMPTS[1], GenerationParams(max_output_tokens=4)),
        Request(base, PROMPTS[2], GenerationParams(max_output_tokens=4, logprobs=2)),
        Request(second, PROMPTS[0], GenerationParams(max_output_tokens=5, logprobs=4)),
    ]
    alone = [backend.generate(r.target, r.prompt, r.params) for r in requests]

    results = backend.generate_many(requests)

    assert results[0].completions[0].logprobs is None
    assert [len(t.top) for t in results[1].completions[0].logprobs] == [2] * 4
    assert [len(t.top) for t in results[2].completions[0].logprobs] == [4] * 5
    for mixed, single in zip(results[1:], alone[1:], strict=True):
        got, want = mixed.completions[0].logprobs, single.completions[0].logprobs
        assert [t.chosen.token_id for t in got] == [t.chosen.token_id for t in want]
        assert [t.chosen.logprob for t in got] == pytest.approx(
            [t.chosen.logprob for t in want], abs=TOLERANCE
        )


def test_a_streamed_answer_refuses_logprobs(backend, base):
    with pytest.raises(InvalidArgument) as caught:
        backend.stream(base, PROMPTS[0], GenerationParams(logprobs=1))
    assert caught.value.param == "logprobs"


def test_more_than_twenty_alternatives_are_refused():
    with pytest.raises(InvalidArgument, match="logprobs must be 0 to 20"):
        GenerationParams(logprobs=21)


def test_every_candidate_stops_at_its_stop_sequence_with_its_logprobs(backend, base):
    """Each of n candidates is its own row: each stops where its text reaches the sequence,
    and its tokens and log probabilities end there too."""
    params = GenerationParams(temperature=1.2, seed=5, n=4, stop=("e",), max_output_tokens=24,
                              logprobs=0)  # fmt: skip
    result = backend.generate(base, PROMPTS[0], params)

    assert len(result.completions) == 4
    for completion in result.completions:
        assert "e" not in completion.text
        assert len(completion.logprobs) == completion.output_tokens
        before_last = "".join(token.chosen.text for token in completion.logprobs[:-1])
        assert "e" not in before_last  # nothing generated past the stop
