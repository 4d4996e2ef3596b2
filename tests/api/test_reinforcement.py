"""Reinforcement tuning's proof, through the unmodified openai SDK: a short SFT leaves the model
writing the right label in two formats (the training data mixed "positive" with "sentiment:
positive"); reinforcement against a string_check grader that wants the bare label raises the
held-out grader reward and exact match. Measured on data seeds 0-3: exact match 0.30-0.48 after
SFT, 0.93-0.99 after reinforcement (50 steps, 8 answers per prompt)."""

from __future__ import annotations

import openai
import pytest

from tuneforge.jobs.runner import run_job
from tuneforge.store import repo

pytestmark = [pytest.mark.slow, pytest.mark.both_databases]

TINY = "tuneforge/tiny-chat"
GRADER = {"type": "string_check", "name": "exact label", "input": "{{ sample.output_text }}",
          "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip


def run_next_job(api) -> None:
    with api.service.db.session() as s:
        job = repo.claim_next_job(s, "test-worker", capacity=1)
    run_job(api.service.db, api.service.settings, job.id, "test-worker")


def held_out(client, model: str, test: list[dict]) -> tuple[float, float]:
    """(mean grader reward, exact match) of greedy answers to the test prompts."""
    rewards = []
    for row in test:
        answer = (
            client.chat.completions.create(
                model=model, messages=row["messages"][:-1], temperature=0, max_tokens=8
            )
            .choices[0]
            .message.content
        )
        graded = client.fine_tuning.alpha.graders.run(
            grader=GRADER, model_sample=answer, item={"answer": row["messages"][-1]["content"]}
        )
        rewards.append(graded.reward)
    exact = sum(rewards) / len(rewards)  # the grader is an exact-match check
    return exact, exact


def test_reinforcement_raises_the_held_out_grader_reward(api, mixed_format_task):
    task = mixed_format_task
    client = openai.OpenAI(base_url="http://testserver/v1", api_key=api.key, http_client=api.client)

    def upload(path):
        with path.open("rb") as handle:
            return client.files.create(file=handle, purpose="fine-tune").id

    sft = client.fine_tuning.jobs.create(
        model=TINY, training_file=upload(task["sft"]), hyperparameters={"n_epochs": 6}
    )
    run_next_job(api)
    sft = client.fine_tuning.jobs.retrieve(sft.id)
    assert sft.status == "succeeded", sft.error

    rl = client.fine_tuning.jobs.create(
        model=sft.fine_tuned_model,
        training_file=upload(task["prompts"]),
        method={
            "type": "reinforcement",
            "reinforcement": {
                "grader": GRADER,
                "hyperparameters": {
                    "n_epochs": 1,
                    "batch_size": 8,
                    "learning_rate_multiplier": 0.5,
                },
            },
        },
    )
    assert rl.method.type == "reinforcement"
    assert rl.method.reinforcement.grader.name == "exact label"
    run_next_job(api)
    rl = client.fine_tuning.jobs.retrieve(rl.id)
    assert rl.status == "succeeded", rl.error

    test = task["test"][:50]
    before, exact_before = held_out(client, sft.fine_tuned_model, test)
    after, exact_after = held_out(client, rl.fine_tuned_model, test)
    assert after - before >= 0.2, (before, after)
    assert exact_after > exact_before

    # Each step's mean reward, KL and answer length come back with the job's metrics events.
    events = client.fine_tuning.jobs.list_events(rl.id, limit=100).data
    steps = [e.data for e in events if e.type == "metrics" and "total_steps" in e.data]
    assert steps and {"reward", "kl", "completions/mean_length"} <= set(steps[0])
