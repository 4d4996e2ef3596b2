"""Creating reinforcement jobs: the grader travels in OpenAI's method settings and in tuneforge's
Vertex spec, and a job without one, or with one that cannot run, is refused naming it."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.both_databases

TINY = "tuneforge/tiny-chat"
GRADER = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
          "reference": "{{ item.answer }}", "operation": "eq"}  # fmt: skip


@pytest.fixture
def prompts(api, tmp_path) -> str:
    path = tmp_path / "prompts.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"{i} + 1 ="}], "answer": str(i + 1)}
            for i in range(20)]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with path.open("rb") as stream:
        return api.service.files.upload("default", path.name, stream, "fine-tune").id


def openai_job(api, prompts, settings: dict):
    return api.client.post(
        "/v1/fine_tuning/jobs",
        headers=api.headers(),
        json={"model": TINY, "training_file": prompts,
              "method": {"type": "reinforcement", "reinforcement": settings}},
    )  # fmt: skip


def test_the_grader_is_kept_and_shown_beside_the_hyperparameters(api, prompts):
    created = openai_job(api, prompts, {"grader": GRADER, "hyperparameters": {"n_epochs": 2}})
    assert created.status_code == 200, created.text
    method = created.json()["method"]
    assert method["reinforcement"]["grader"] == GRADER
    assert method["reinforcement"]["hyperparameters"]["n_epochs"] == 2
    assert "grader" not in method["reinforcement"]["hyperparameters"]


@pytest.mark.parametrize(
    ("method_settings", "fragment"),
    [
        ({}, "needs method.reinforcement.grader"),
        ({"grader": {"type": "regex", "name": "x"}}, "is not one of the types"),
        ({"grader": {**GRADER, "operation": "startswith"}}, "operation"),
        ({"grader": {"type": "python", "name": "p", "source": "def grade(s, i):\n    return 1"}},
         "TUNEFORGE_PYTHON_GRADERS"),
        ({"grader": {"type": "reward_model", "name": "rm", "model": TINY}},
         "is not a reward model"),
    ],
)  # fmt: skip
def test_a_job_without_a_grader_that_can_run_is_refused(api, prompts, method_settings, fragment):
    refused = openai_job(api, prompts, method_settings)
    assert refused.status_code == 400, refused.text
    assert fragment in refused.json()["error"]["message"]


def test_vertex_takes_the_grader_in_tuneforges_reinforcement_spec(api, prompts):
    created = api.client.post(
        "/v1/projects/p/locations/local/tuningJobs",
        headers=api.headers(),
        json={"baseModel": TINY,
              "reinforcementTuningSpec": {"trainingDatasetUri": prompts, "grader": GRADER}},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    spec = created.json()["reinforcementTuningSpec"]
    assert spec["grader"] == GRADER and "grader" not in spec.get("hyperParameters", {})
