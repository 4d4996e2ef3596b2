"""A new tuning method is its registration (and its trainer): every surface picks it up from
the registry. Here a made-up method, registered for the test alone, goes through both APIs."""

from __future__ import annotations

import pytest
from pydantic import Field

from tests.api.conftest import Api
from tuneforge.engine.methods import TuningMethod, register_method
from tuneforge.engine.methods import registry as method_registry
from tuneforge.engine.spec import Hyperparameters

TINY = "tuneforge/tiny-chat"
PARENT = "projects/p/locations/l"


class EchoHyperparameters(Hyperparameters):
    echo_loudness: float = Field(default=1.0, gt=0, le=10)


@pytest.fixture
def echo():
    method = register_method(
        TuningMethod(
            name="echo",
            task="supervised",
            hyperparameters=EchoHyperparameters,
            trainer="tuneforge.engine.methods.supervised.trainer:prepare_sft",
            description="a test's method",
            epoch_scale=3,
            vertex_spec="echoTuningSpec",
            vertex_stats="echoTuningDataStats",
        )
    )
    yield method
    del method_registry._METHODS["echo"]


@pytest.fixture
def train_file(api: Api, sentiment_files) -> str:
    with sentiment_files["train"].open("rb") as stream:
        return api.service.files.upload("default", "train.jsonl", stream, "fine-tune").id


def test_vertex_creates_a_job_of_a_newly_registered_method_with_its_own_hyperparameter(
    api: Api, echo, train_file
):
    body = {
        "baseModel": TINY,
        "echoTuningSpec": {
            "trainingDatasetUri": train_file,
            "hyperParameters": {"echoLoudness": 2},  # Vertex's camelCase for echo_loudness
        },
    }
    response = api.client.post(f"/v1/{PARENT}/tuningJobs", json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["echoTuningSpec"]["hyperParameters"] == {"echoLoudness": 2}
    stored = api.service.jobs.get("default", job["name"].rsplit("/", 1)[-1]).job
    assert (stored.method, stored.hyperparameters) == ("echo", {"echo_loudness": 2})


def test_its_bounds_and_unknown_names_are_refused_in_the_surfaces_terms(api: Api, echo, train_file):
    for hyper_parameters, named in (({"loudness": 50}, "loudness"), ({"beta": 0.1}, "beta")):
        body = {
            "baseModel": TINY,
            "echoTuningSpec": {
                "trainingDatasetUri": train_file,
                "hyperParameters": hyper_parameters,
            },
        }
        response = api.client.post(f"/v1/{PARENT}/tuningJobs", json=body, headers=api.headers())
        assert response.status_code == 400
        assert f"echoTuningSpec.hyperParameters.{named}" in response.json()["error"]["message"]


def test_openai_names_where_a_method_it_does_not_offer_is_available(api: Api, echo, train_file):
    body = {"model": TINY, "training_file": train_file, "method": {"type": "echo"}}
    response = api.client.post("/v1/fine_tuning/jobs", json=body, headers=api.headers())
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "echo is available through the Vertex API (echoTuningSpec)" in message
    assert "tuneforge tune --method echo" in message
