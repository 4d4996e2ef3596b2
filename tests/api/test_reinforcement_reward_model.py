"""Reinforcement against a reward model, through the unmodified openai SDK: a reward model learned
from the built-in preference data steers a short SFT's mixed-format answers to the right bare
label. The reward model prefers the reinforced answers, and they are right more often."""

from __future__ import annotations

import json

import openai
import pytest

from tests.api.test_reinforcement import TINY, run_next_job
from tuneforge.data.samples import write_preference_task

pytestmark = pytest.mark.slow


def scores(api, model: str, prompts: list[list[dict]], answers: list[str]) -> list[float]:
    conversations = [
        [*p, {"role": "assistant", "content": a}] for p, a in zip(prompts, answers, strict=True)
    ]
    response = api.client.post(
        "/v1/score", json={"model": model, "conversations": conversations}, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    return [d["score"] for d in response.json()["data"]]


def greedy_answers(client, model: str, prompts: list[list[dict]]) -> list[str]:
    return [
        client.chat.completions.create(model=model, messages=p, temperature=0, max_tokens=8)
        .choices[0]
        .message.content
        for p in prompts
    ]


def test_reinforcement_against_a_reward_model_wins_over_the_sft_model(
    api, mixed_format_task, tmp_path
):
    """The reward model ranks 0.98-1.00 of held-out label pairs; exact match 0.32-0.61 after
    SFT, 0.87-0.96 after reinforcement against the reward model (50 steps); the reward model
    prefers the reinforced model's answer on 0.69-0.84 of held-out prompts (ties half).
    Measured with the same recipe through the engine, data seeds 0-3."""
    client = openai.OpenAI(base_url="http://testserver/v1", api_key=api.key, http_client=api.client)

    def upload(path):
        with path.open("rb") as handle:
            return client.files.create(file=handle, purpose="fine-tune").id

    # The reward model: Vertex's request shape, on the built-in preference data whose raters
    # also reject a label written wrong ("sentiment: positive", "posi", "positive the").
    preferences = write_preference_task(tmp_path / "preferences", seed=0, malformed=True)
    created = api.client.post(
        "/v1/projects/p/locations/local/tuningJobs",
        headers=api.headers(),
        json={"baseModel": TINY, "rewardModelTuningSpec": {
            "trainingDatasetUri": upload(preferences["train"]),
            "hyperParameters": {"epochCount": 3}}},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    run_next_job(api)
    done = api.client.get(f"/v1/{created.json()['name']}", headers=api.headers()).json()
    assert done["state"] == "JOB_STATE_SUCCEEDED", done
    reward_model = done["tunedModel"]["model"].rsplit("/", 1)[-1]

    test_pairs = [json.loads(line) for line in preferences["test"].read_text().splitlines()][:100]
    prompts = [row["input"]["messages"] for row in test_pairs]
    chosen = [row["preferred_output"][0]["content"] for row in test_pairs]
    rejected = [row["non_preferred_output"][0]["content"] for row in test_pairs]
    ranked = zip(scores(api, reward_model, prompts, chosen),
                 scores(api, reward_model, prompts, rejected), strict=True)  # fmt: skip
    assert sum(c > r for c, r in ranked) / len(prompts) >= 0.9

    sft = client.fine_tuning.jobs.create(
        model=TINY, training_file=upload(mixed_format_task["sft"]), hyperparameters={"n_epochs": 6}
    )
    run_next_job(api)
    sft = client.fine_tuning.jobs.retrieve(sft.id)
    assert sft.status == "succeeded", sft.error

    grader = {"type": "reward_model", "name": "preferences", "model": reward_model}
    rl = client.fine_tuning.jobs.create(
        model=sft.fine_tuned_model,
        training_file=upload(mixed_format_task["prompts"]),
        method={"type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": {
            "n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 0.5}}},
    )  # fmt: skip
    run_next_job(api)
    rl = client.fine_tuning.jobs.retrieve(rl.id)
    assert rl.status == "succeeded", rl.error

    before = greedy_answers(client, sft.fine_tuned_model, prompts)
    after = greedy_answers(client, rl.fine_tuned_model, prompts)
    judged = zip(scores(api, reward_model, prompts, after),
                 scores(api, reward_model, prompts, before), strict=True)  # fmt: skip
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in judged]
    assert sum(wins) / len(wins) >= 0.6
    # The rise is real, not the reward model fooled: more answers are exactly the right label.
    exact = [
        sum(a == c for a, c in zip(answers, chosen, strict=True)) / len(chosen)
        for answers in (before, after)
    ]
    assert exact[1] - exact[0] >= 0.2, exact

    # The same grader scores one answer through OpenAI's grader route: the prompt is the item's.
    graded = client.fine_tuning.alpha.graders.run(
        grader=grader, model_sample=chosen[0], item={"messages": prompts[0]}
    )
    assert graded.reward == pytest.approx(scores(api, reward_model, prompts[:1], chosen[:1])[0])
