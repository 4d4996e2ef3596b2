"""Tuned models as Vertex's Model Registry shows them: google-genai's models.get and
models.list(query_base=False), with each model's endpoint and checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.genai import errors as genai_errors

from tests.api.conftest import Api
from tests.api.test_vertex import (
    PARENT,
    complete_job,
    create,
    job_id_of,
    sdk_client,
    supervised,
    train_file,
)

__all__ = ["train_file"]  # the fixture, used by name
pytestmark = pytest.mark.both_databases


def tuned(api: Api, train_file: str, tmp_path: Path, name: str) -> tuple[dict, list[str]]:
    body = {**supervised(train_file), "tunedModelDisplayName": name}
    job_name = create(api, body).json()["name"]
    checkpoints = complete_job(api, job_id_of(job_name), tmp_path)
    return api.client.get(f"/v1/{job_name}", headers=api.headers()).json(), checkpoints


def test_get_shows_a_tuned_model_its_endpoint_and_checkpoints(
    api: Api, train_file: str, tmp_path: Path
):
    job, checkpoints = tuned(api, train_file, tmp_path, "sentiment")
    client = sdk_client(api, api.key)

    model = client.models.get(model=job["tunedModel"]["model"])

    assert model.name == job["tunedModel"]["model"]
    assert model.display_name == "sentiment"
    assert model.version == "1"
    assert [e.name for e in model.endpoints] == [job["tunedModel"]["endpoint"]]
    assert model.tuned_model_info.base_model == "tuneforge/tiny-chat"
    assert [c.checkpoint_id for c in model.checkpoints] == checkpoints
    assert [c.epoch for c in model.checkpoints] == [1, 2]
    # Vertex's versioned name reads the same model.
    versioned = api.client.get(f"/v1/{job['tunedModel']['model']}@1", headers=api.headers())
    assert versioned.json()["name"] == model.name


def test_list_pages_through_the_projects_tuned_models_only(
    api: Api, train_file: str, tmp_path: Path
):
    names = [tuned(api, train_file, tmp_path, f"m{i}")[0]["tunedModel"]["model"] for i in range(3)]
    create(api, supervised(train_file))  # queued: no tuned model
    client = sdk_client(api, api.key)

    listed = list(client.models.list(config={"query_base": False, "page_size": 2}))

    assert sorted(m.name for m in listed) == sorted(names)
    other = api.client.get(f"/v1/{PARENT}/models", headers=api.headers(api.other_key))
    assert other.json().get("models", []) == []


def test_unknown_other_projects_and_deleted_models_are_not_found(
    api: Api, train_file: str, tmp_path: Path
):
    job, _ = tuned(api, train_file, tmp_path, "x")
    model = job["tunedModel"]["model"]
    mine = api.client.get(f"/v1/{model}", headers=api.headers())
    assert mine.status_code == 200
    theirs = api.client.get(f"/v1/{model}", headers=api.headers(api.other_key))
    assert theirs.status_code == 404
    for missing in ("tm-000000000000", "123", "tj-000000000000"):
        response = api.client.get(f"/v1/{PARENT}/models/{missing}", headers=api.headers())
        assert response.status_code == 404, missing
        assert response.json()["error"]["status"] == "NOT_FOUND"

    api.client.delete(f"/v1/models/{job['tunedModel']['model'].rsplit('/', 1)[-1]}",
                      headers=api.headers())  # fmt: skip
    client = sdk_client(api, api.key)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.get(model=model)
    assert caught.value.code == 404


def test_a_filter_other_than_every_tuned_model_is_refused(api: Api):
    response = api.client.get(
        f"/v1/{PARENT}/models", params={"filter": "display_name=x"}, headers=api.headers()
    )
    assert response.status_code == 400
    assert "filter" in response.json()["error"]["message"]
