"""OpenAI's grader routes, driven by the unmodified openai SDK: validate answers the grader back
or names what is wrong, run scores a sample in GraderRunResponse's shape."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.both_databases

CHECK = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
         "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip


@pytest.fixture
def client(api) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=api.key, http_client=api.client)


def test_validate_answers_the_grader_back(client):
    assert client.fine_tuning.alpha.graders.validate(grader=CHECK).grader.name == "exact"


def test_run_scores_a_sample_against_its_item(client):
    hit = client.fine_tuning.alpha.graders.run(
        grader=CHECK, model_sample="42", item={"answer": "42"}
    )
    miss = client.fine_tuning.alpha.graders.run(
        grader=CHECK, model_sample="41", item={"answer": "42"}
    )
    assert (hit.reward, miss.reward) == (1.0, 0.0)
    assert hit.metadata.type == "string_check" and hit.metadata.name == "exact"
    assert not any(
        getattr(hit.metadata.errors, flag) for flag in ("other_error", "sample_parse_error")
    )


def test_a_missing_item_field_is_flagged_not_refused(client):
    result = client.fine_tuning.alpha.graders.run(grader=CHECK, model_sample="42", item={})
    assert result.reward == 0.0 and result.metadata.errors.invalid_variable_error


def test_a_multi_grader_reports_each_sub_reward(client):
    grader = {"type": "multi", "name": "m", "calculate_output": "0.5 * exact + 0.5 * near",
              "graders": {"exact": CHECK, "near": {**CHECK, "operation": "like"}}}  # fmt: skip
    result = client.fine_tuning.alpha.graders.run(
        grader=grader, model_sample="it is 42", item={"answer": "42"}
    )
    assert result.reward == 0.5 and result.sub_rewards == {"exact": 0.0, "near": 1.0}


def test_a_score_model_grader_is_judged_by_a_model_of_this_server(client):
    grader = {"type": "score_model", "name": "judge", "model": "tuneforge/tiny-chat",
              "input": [{"role": "user", "content": "Score 0 to 1: {{ sample.output_text }}"}],
              "sampling_params": {"max_completions_tokens": 4}}  # fmt: skip
    result = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="fine")
    # The untuned tiny model answers with no number: scored 0, the reason flagged.
    assert 0.0 <= result.reward <= 1.0
    assert result.metadata.type == "score_model"


@pytest.mark.parametrize(
    ("grader", "fragment"),
    [
        ({"type": "regex", "name": "x"}, "is not one of the types"),
        ({"type": "multi", "name": "m", "calculate_output": "exact +", "graders": {"exact": CHECK}},
         "not a formula"),
        ({"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1"},
         "TUNEFORGE_PYTHON_GRADERS"),
        ({"type": "score_model", "name": "j", "model": "ft:nope",
          "input": [{"role": "user", "content": "x"}]}, "not found"),
        ({"type": "reward_model", "name": "rm", "model": "tuneforge/tiny-chat"},
         "is not a reward model"),
    ],
)  # fmt: skip
def test_a_bad_grader_is_a_400_naming_it(client, grader, fragment):
    with pytest.raises(openai.APIStatusError) as raised:
        client.fine_tuning.alpha.graders.validate(grader=grader)
    assert raised.value.status_code in (400, 404)
    assert fragment in raised.value.message
