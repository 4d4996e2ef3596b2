"""Every value a job request carries has a limit: past it, a 400 naming the field (never a 500,
never a job that holds the only slot), and another project's ids reveal nothing."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.api.test_models_api import register_tuned_model
from tuneforge.store import repo

TINY = "tuneforge/tiny-chat"
JOBS = "/v1/fine_tuning/jobs"
VERTEX_JOBS = "/v1/projects/p/locations/l/tuningJobs"


@pytest.fixture
def train_file(api: Api, sentiment_files) -> str:
    with sentiment_files["train"].open("rb") as stream:
        return api.service.files.upload("default", "train.jsonl", stream, "fine-tune").id


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"hyperparameters": {"n_epochs": 1_000_000_000}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"batch_size": 10**9}}, "hyperparameters.batch_size"),
        ({"hyperparameters": {"n_epochs": True}}, "hyperparameters.n_epochs"),
        ({"seed": 2**63}, "seed"),
        ({"seed": -1}, "seed"),
        ({"suffix": "x" * 65}, "suffix"),
        ({"metadata": {f"k{i}": "v" for i in range(65)}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"model": "m" * 10_000}, "model"),
        ({"model": "tuneforge/tiny-chat\x00"}, "model"),
        ({"training_file": "f" * 5000}, "training_file"),
    ],
)
def test_openai_refuses_a_value_past_its_limit_naming_the_field(api: Api, train_file, extra, param):
    body = {"model": TINY, "training_file": train_file, **extra}
    response = api.client.post(JOBS, json=body, headers=api.headers())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert api.service.jobs.list("default").items == []


@pytest.mark.parametrize(
    ("top", "named"),
    [
        ({"tunedModelDisplayName": "n" * 201}, "tunedModelDisplayName"),
        ({"description": "d" * 5000}, "description"),
        ({"labels": {"k": "v" * 600}}, "labels"),
    ],
)
def test_vertex_refuses_a_value_past_its_limit_naming_the_field(api: Api, train_file, top, named):
    body = {"baseModel": TINY, "supervisedTuningSpec": {"trainingDatasetUri": train_file}, **top}
    response = api.client.post(VERTEX_JOBS, json=body, headers=api.headers())
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]["message"]


def test_a_model_name_of_ten_thousand_characters_is_not_found_not_a_500(api: Api):
    body = {"model": "m" * 10_000, "messages": [{"role": "user", "content": "hi"}]}
    response = api.client.post("/v1/chat/completions", json=body, headers=api.headers())
    assert response.status_code in (400, 404), response.text


def test_another_projects_checkpoint_id_answers_as_a_missing_one(api: Api, tmp_path):
    theirs = register_tuned_model(api.service, "other", tmp_path)
    with api.service.db.session() as s:
        [checkpoint] = repo.list_checkpoints(s, theirs.id)
    answers = []
    for model in (checkpoint.id, "ckpt-does-not-exist"):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        response = api.client.post("/v1/chat/completions", json=body, headers=api.headers())
        assert response.status_code == 404
        answers.append(response.json()["error"]["message"].replace(model, "<model>"))
    assert answers[0] == answers[1]
    assert theirs.id not in answers[0]
