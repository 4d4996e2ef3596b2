"""Mixed batches: adapters of one base, the base itself and different sampling parameters in one
generate call, each request isolated from the others' errors."""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from transformers import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from tests.inference.conftest import PROMPTS
from tuneforge.data.records import Conversation, Turn
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.inference.batching import BatchingBackend
from tuneforge.inference.row_controls import PerRowSampling
from tuneforge.inference.types import GenerationParams, ModelTarget, Request

GREEDY = GenerationParams(max_output_tokens=12)


def tuned(base: ModelTarget, adapter: Path) -> ModelTarget:
    return ModelTarget(name=adapter.name, base_source=base.base_source, adapter_path=adapter)


class GenerateCounter:
    """Counts the model's generate calls and the rows of each (PEFT's generate calls this one)."""

    def __init__(self, monkeypatch) -> None:
        import transformers

        self.rows: list[int] = []
        original = transformers.GenerationMixin.generate

        def counted(model, *args, **kwargs):
            self.rows.append(kwargs["input_ids"].shape[0])
            return original(model, *args, **kwargs)

        monkeypatch.setattr(transformers.GenerationMixin, "generate", counted)


def mixed_requests(base, adapters) -> list[Request]:
    targets = [base, *(tuned(base, a) for a in adapters[:4])]
    return [
        Request(targets[i % len(targets)], PROMPTS[i % len(PROMPTS)], GREEDY) for i in range(10)
    ]


def test_greedy_in_a_mixed_batch_equals_each_request_alone(backend, base, adapters, monkeypatch):
    requests = mixed_requests(base, adapters)
    alone = [backend.generate(r.target, r.prompt, r.params) for r in requests]
    assert len({result.completions[0].text for result in alone}) >= 5  # the adapters differ
    counter = GenerateCounter(monkeypatch)
    assert backend.generate_many(requests) == alone
    assert len(counter.rows) == 1 and counter.rows[0] == len(requests)


def test_rows_keep_their_own_length_and_stop_sequences(backend, base, adapters):
    requests = [
        Request(base, PROMPTS[0], GenerationParams(max_output_tokens=3)),
        Request(tuned(base, adapters[1]), PROMPTS[1], GenerationParams(max_output_tokens=20)),
        Request(tuned(base, adapters[2]), PROMPTS[2], GenerationParams(max_output_tokens=1)),
    ]
    alone = [backend.generate(r.target, r.prompt, r.params) for r in requests]
    text = alone[1].completions[0].text
    stop = text.split()[2] if len(text.split()) > 2 else text[-2:]
    requests.append(Request(requests[1].target, PROMPTS[1], GenerationParams(stop=(stop,))))
    alone.append(backend.generate(requests[3].target, PROMPTS[1], requests[3].params))

    results = backend.generate_many(requests)

    assert results == alone
    short, long, single = (r.completions[0] for r in results[:3])
    assert (short.output_tokens, short.finish_reason) == (3, "length")
    assert (single.output_tokens, single.finish_reason) == (1, "length")
    # the long row runs past its neighbours' budgets to its own 20 tokens or to its own EOS
    # (where a random adapter writes EOS differs between CPUs)
    assert (long.output_tokens, long.finish_reason) == (20, "length") or (
        3 < long.output_tokens < 20 and long.finish_reason == "stop"
    )
    assert stop not in results[3].completions[0].text


def test_sampled_rows_share_the_batch_with_greedy_ones(backend, base, adapters, monkeypatch):
    target = tuned(base, adapters[3])
    greedy_alone = backend.generate(target, PROMPTS[1], GREEDY)
    # top-k 1 and a tiny top-p both leave only the most likely token: sampling gives greedy
    requests = [
        Request(target, PROMPTS[1], GREEDY),
        Request(
            target, PROMPTS[1], GenerationParams(temperature=1.5, top_k=1, max_output_tokens=12)
        ),
        Request(
            target, PROMPTS[1], GenerationParams(temperature=0.7, top_p=1e-6, max_output_tokens=12)
        ),
        Request(base, PROMPTS[0], GenerationParams(temperature=1.0, n=3, max_output_tokens=5)),
    ]
    counter = GenerateCounter(monkeypatch)
    results = backend.generate_many(requests)
    assert counter.rows == [6]  # 3 single rows and 3 candidates, one call
    assert results[0] == results[1] == results[2] == greedy_alone
    assert len(results[3].completions) == 3
    assert all(c.output_tokens <= 5 for c in results[3].completions)


def test_per_row_sampling_matches_transformers_warpers_row_by_row():
    torch.manual_seed(0)
    scores = torch.randn(4, 50)
    rows = [(0.7, 0, 0.9), (1.3, 5, 1.0), (1.0, 3, 0.5), (2.0, 0, 1.0)]  # temperature, k, p
    warped = PerRowSampling(*zip(*rows, strict=True), device="cpu")(None, scores.clone())
    for row, (temperature, top_k, top_p) in enumerate(rows):
        warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_k:
            warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1:
            warpers.append(TopPLogitsWarper(top_p))
        expected = warpers(None, scores[row : row + 1].clone())
        assert torch.equal(warped[row : row + 1], expected)


def test_a_greedy_row_is_one_hot_at_its_argmax():
    scores = torch.randn(2, 30)
    warped = PerRowSampling([0.0, 1.0], [0, 0], [1.0, 1.0], device="cpu")(None, scores.clone())
    assert torch.isfinite(warped[0]).sum() == 1
    assert warped[0].argmax() == scores[0].argmax()
    assert torch.equal(warped[1], scores[1])


def over_long() -> Conversation:
    return Conversation((Turn("user", "good " * 600),))


def test_an_over_long_or_bad_prompt_fails_only_its_own_request(backend, base, adapters, tmp_path):
    good = mixed_requests(base, adapters)[:4]
    bad = [
        Request(base, over_long(), GREEDY),
        Request(base, Conversation((Turn("user", "hi"), Turn("model", "hello"))), GREEDY),
        Request(tuned(base, tmp_path / "gone"), PROMPTS[0], GREEDY),
    ]
    outcomes = backend.generate_many([good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3]])

    assert outcomes[0::2] == [backend.generate(r.target, r.prompt, r.params) for r in good]
    too_long, not_a_prompt, missing = outcomes[1::2]
    assert isinstance(too_long, InvalidArgument) and too_long.param == "contents"
    assert "the model reads at most 512" in str(too_long)
    tokens = int(str(too_long).split("the prompt has ")[1].split()[0])
    assert tokens > 512
    assert isinstance(not_a_prompt, InvalidArgument) and "user turn" in str(not_a_prompt)
    assert isinstance(missing, NotFound)


def test_concurrent_callers_of_many_adapters_share_one_batch(backend, base, adapters, monkeypatch):
    requests = [*mixed_requests(base, adapters), Request(base, over_long(), GREEDY)]
    alone = [backend.generate(r.target, r.prompt, r.params) for r in requests[:-1]]
    counter = GenerateCounter(monkeypatch)
    batching = BatchingBackend(backend, max_batch=len(requests), window_s=5.0)
    barrier = threading.Barrier(len(requests))
    outcomes: list = [None] * len(requests)

    def call(index: int) -> None:
        barrier.wait()
        request = requests[index]
        try:
            outcomes[index] = batching.generate(request.target, request.prompt, request.params)
        except InvalidArgument as err:
            outcomes[index] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes[:-1] == alone
    assert isinstance(outcomes[-1], InvalidArgument)
    assert counter.rows == [len(requests) - 1]  # one call: the over-long prompt never ran


def test_the_old_policy_batches_per_target_and_params(backend, base, adapters):
    batching = BatchingBackend(backend, mix_adapters=False)
    first, second = tuned(base, adapters[0]), tuned(base, adapters[1])
    assert batching.batch_group(first, GREEDY) != batching.batch_group(second, GREEDY)
    mixing = BatchingBackend(backend)
    assert mixing.batch_group(first, GREEDY) == mixing.batch_group(base, GREEDY)
    assert mixing.batch_group(first, GREEDY) == mixing.batch_group(first, GenerationParams())


def test_a_dora_adapter_runs_beside_the_mixed_batch(backend, base, adapters, tiny_source, tmp_path):
    from peft import LoraConfig, get_peft_model

    from tuneforge.inference.model_cache import mixable
    from tuneforge.models.loading import load_causal_lm

    config = LoraConfig(r=4, target_modules="all-linear", use_dora=True, task_type="CAUSAL_LM")
    model = get_peft_model(load_causal_lm(tiny_source), config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5, generator=torch.Generator().manual_seed(7))
    model.save_pretrained(tmp_path / "dora")
    dora = tuned(base, tmp_path / "dora")
    assert not mixable(dora.adapter_path) and mixable(adapters[0])
    requests = [Request(dora, PROMPTS[0], GREEDY), *mixed_requests(base, adapters)[:3]]
    alone = [backend.generate(r.target, r.prompt, r.params) for r in requests]
    assert backend.generate_many(requests) == alone


def test_evaluation_runs_tuned_base_and_few_shot_in_shared_batches(
    backend, base, adapters, monkeypatch
):
    from tuneforge.inference.evaluate import Candidate, evaluate_candidates, few_shot_prompt

    def example(question: str, answer: str) -> Conversation:
        return Conversation((Turn("user", question), Turn("model", answer)))

    test = [example(f"review {i}: a fine film", "positive") for i in range(6)]
    shots = [example("a dreadful film", "negative")]
    target = tuned(base, adapters[5])
    candidates = [
        Candidate("tuned", target),
        Candidate("base", base),
        Candidate("few", base, shots),
    ]
    counter = GenerateCounter(monkeypatch)

    report = evaluate_candidates(candidates, test, backend, GREEDY, batch_size=16)

    assert counter.rows == [16, 16, 2]  # warm-up, then 18 requests in two mixed batches
    for candidate, scores in zip(candidates, report.candidates, strict=True):
        for example_, score in zip(test, scores.scores, strict=True):
            prompt = few_shot_prompt(Conversation(example_.turns[:1]), candidate.shots)
            alone = backend.generate(candidate.target, prompt, GREEDY).completions[0]
            assert score.prediction == alone.text
        assert scores.output_tokens_per_second > 0
