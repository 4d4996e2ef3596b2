from __future__ import annotations

import pytest

from tuneforge.data import stats as stats_module
from tuneforge.data.records import Conversation, PreferenceExample, Turn
from tuneforge.data.stats import Distribution, compute_stats
from tuneforge.data.tokenize import count_tokens
from tuneforge.errors import InvalidArgument


def conversation(*texts: str, system: str | None = None) -> Conversation:
    roles = ("user", "model")
    return Conversation(tuple(Turn(roles[i % 2], t) for i, t in enumerate(texts)), system)


@pytest.fixture
def characters_as_tokens(monkeypatch):
    """count_tokens stand-in: one token per character, system and user side in, model side out."""

    def count(example, tokenizer):
        if isinstance(example, PreferenceExample):
            prompt, output = example.prompt, len(example.chosen)
        else:
            prompt = example
            output = sum(len(t.text) for t in example.turns if t.role == "model")
        inputs = len(prompt.system or "") + sum(
            len(t.text) for t in prompt.turns if t.role == "user"
        )
        return inputs, output

    monkeypatch.setattr(stats_module, "count_tokens", count)


def test_distribution_of_known_values():
    dist = Distribution.of(list(range(1, 101)))
    assert (dist.sum, dist.min, dist.max, dist.mean, dist.median) == (5050, 1, 100, 50.5, 50.5)
    assert dist.p5 == pytest.approx(5.95)
    assert dist.p95 == pytest.approx(95.05)
    assert len(dist.buckets) == 10
    assert [b.count for b in dist.buckets] == [10] * 10
    assert (dist.buckets[0].left, dist.buckets[-1].right) == (1, 100)
    widths = {round(b.right - b.left, 9) for b in dist.buckets}
    assert widths == {9.9}


def test_distribution_buckets_cover_every_value_once():
    values = [3, 3, 4, 7, 50, 51, 999, 1000]
    dist = Distribution.of(values)
    assert sum(b.count for b in dist.buckets) == len(values)
    assert all(b.left < b.right for b in dist.buckets)
    assert dist.buckets[-1].count == 2  # the last bucket includes its right edge (1000)


def test_distribution_of_a_narrow_integer_range_has_fewer_buckets():
    dist = Distribution.of([2, 2, 3, 4])
    assert [b.count for b in dist.buckets] == [2, 1, 1]


def test_distribution_of_equal_values_is_one_bucket():
    dist = Distribution.of([5, 5, 5])
    assert dist.buckets == [stats_module.Bucket(count=3, left=5, right=5)]
    assert (dist.min, dist.max, dist.p5, dist.p95) == (5, 5, 5, 5)


def test_distribution_of_nothing_is_zeros():
    dist = Distribution.of([])
    assert dist.sum == 0 and dist.buckets == []


@pytest.mark.usefixtures("characters_as_tokens")
def test_compute_stats_totals_steps_and_truncation():
    examples = [
        conversation("abc", "de"),  # 3 in, 2 out
        conversation("a" * 10, "b" * 10, system="sys"),  # 13 in, 10 out: truncated to 20
        conversation("q", "a", "q", "a"),  # 2 in, 2 out
    ]
    stats = compute_stats(examples, tokenizer=None, epochs=3, batch_size=2, max_length=20)
    assert stats.example_count == 3
    assert stats.total_characters == 5 + 23 + 4
    assert stats.billable_characters == 32 * 3
    assert stats.total_tokens == 5 + 23 + 4
    assert stats.billable_tokens == (5 + 20 + 4) * 3
    assert stats.step_count == 2 * 3
    assert stats.truncated_example_indices == [1]
    assert (stats.input_tokens.sum, stats.input_tokens.min, stats.input_tokens.max) == (18, 2, 13)
    assert (stats.output_tokens.sum, stats.output_tokens.median) == (14, 2)
    assert (stats.messages_per_example.min, stats.messages_per_example.max) == (2, 4)
    assert stats.messages_per_example.sum == 2 + 3 + 4  # the system instruction is a message


@pytest.mark.usefixtures("characters_as_tokens")
def test_preference_examples_count_the_chosen_response_as_output():
    example = PreferenceExample(conversation("abcd", system="s"), chosen="yes", rejected="no!!!")
    stats = compute_stats([example], tokenizer=None)
    assert (stats.input_tokens.sum, stats.output_tokens.sum) == (5, 3)
    assert stats.total_characters == 5 + 3 + 5  # both responses are text the job processes
    assert stats.messages_per_example.sum == 3


@pytest.mark.usefixtures("characters_as_tokens")
def test_without_max_length_nothing_is_truncated():
    stats = compute_stats([conversation("a" * 1000, "b")], tokenizer=None)
    assert stats.truncated_example_indices == []
    assert stats.billable_tokens == stats.total_tokens == 1001


def test_no_examples():
    stats = compute_stats([], tokenizer=None, epochs=2, batch_size=4)
    assert (stats.example_count, stats.total_tokens, stats.step_count) == (0, 0, 0)


@pytest.mark.parametrize(("epochs", "batch_size"), [(0, 1), (1, 0), (-1, 4)])
def test_epochs_and_batch_size_must_be_positive(epochs, batch_size):
    with pytest.raises(InvalidArgument):
        compute_stats([], tokenizer=None, epochs=epochs, batch_size=batch_size)


def test_counts_tokens_with_the_models_chat_template(tiny_tokenizer):
    examples = [
        conversation("Classify: great movie ->", "positive", system="Classify the review."),
        PreferenceExample(conversation("2+2?"), chosen="4", rejected="5"),
    ]
    stats = compute_stats(examples, tiny_tokenizer, max_length=1000)
    counts = [count_tokens(example, tiny_tokenizer) for example in examples]
    assert stats.input_tokens.sum == sum(i for i, _ in counts)
    assert stats.output_tokens.sum == sum(o for _, o in counts)
    assert all(i > 0 and o > 0 for i, o in counts)
    assert stats.total_tokens == sum(map(sum, counts))


@pytest.mark.usefixtures("characters_as_tokens")
def test_to_vertex_is_vertexs_supervised_tuning_data_stats():
    stats = compute_stats(
        [conversation("abc", "de"), conversation("x" * 30, "y")], None, epochs=2, max_length=20
    )
    vertex = stats.to_vertex()
    assert vertex["tuningDatasetExampleCount"] == 2
    assert vertex["totalTuningCharacterCount"] == 36
    assert vertex["totalBillableTokenCount"] == (5 + 20) * 2
    assert vertex["tuningStepCount"] == 4
    assert vertex["truncatedExampleIndices"] == [1]
    for key in ("userInputTokenDistribution", "userOutputTokenDistribution",
                "userMessagePerExampleDistribution"):  # fmt: skip
        assert set(vertex[key]) == {"sum", "min", "max", "mean", "median", "p5", "p95", "buckets"}
        assert set(vertex[key]["buckets"][0]) == {"count", "left", "right"}

    genai_types = pytest.importorskip("google.genai.types")
    parsed = genai_types.SupervisedTuningDataStats.model_validate(vertex)
    assert parsed.tuning_dataset_example_count == 2
    assert parsed.user_input_token_distribution.p95 == stats.input_tokens.p95
    assert parsed.model_extra in (None, {})


def test_counts_from_validation_are_used_and_agree(models_dir, tmp_path):
    """A report validated with the tokenizer carries each example's counts; the statistics
    built from them equal those counted afresh, and nothing is tokenized a second time."""
    from unittest import mock

    from transformers import AutoTokenizer

    from tuneforge.data.samples import write_task
    from tuneforge.data.validate import validate_dataset

    tokenizer = AutoTokenizer.from_pretrained(models_dir / "tiny-chat")
    path = write_task(tmp_path, "sentiment", sizes=(30, 5, 5))["train"]
    report = validate_dataset(path, tokenizer=tokenizer, max_length=2048)
    assert len(report.token_counts) == len(report.examples) == 30
    fresh = compute_stats(report.examples, tokenizer, epochs=2, batch_size=4)
    with mock.patch.object(stats_module, "count_tokens", side_effect=AssertionError):
        reused = compute_stats(
            report.examples, tokenizer, epochs=2, batch_size=4, token_counts=report.token_counts
        )
    assert reused == fresh
