"""DELETE /v1/models/{model}: a tuned model of the key's project is deleted and answers no more
under any of its names; its job stays. Base models, checkpoints and other projects' models are
refused, another project's exactly as a missing one."""

from __future__ import annotations

import pytest
from openai.types import ModelDeleted

from tests.api.conftest import Api
from tests.api.test_models_api import TINY, fine_tuned_name, register_tuned_model
from tuneforge.store import repo

pytestmark = pytest.mark.both_databases

HI = [{"role": "user", "content": "hi"}]


def delete(api: Api, model: str, status: int) -> dict:
    response = api.client.delete(f"/v1/models/{model}", headers=api.headers())
    assert response.status_code == status, response.text
    return response.json()


def chat_status(api: Api, model: str) -> int:
    body = {"model": model, "messages": HI, "max_tokens": 1}
    return api.client.post("/v1/chat/completions", json=body, headers=api.headers()).status_code


def test_a_deleted_tuned_model_no_longer_lists_or_answers_and_its_job_stays(api: Api, tmp_path):
    job = register_tuned_model(api.service, "default", tmp_path, suffix="mine")
    name = fine_tuned_name(job)
    with api.service.db.session() as s:
        [checkpoint] = repo.list_checkpoints(s, job.id)
        tuned_id = repo.get_job(s, "default", job.id).tuned_model.id

    deleted = ModelDeleted.model_validate(delete(api, name, 200))

    assert (deleted.id, deleted.object, deleted.deleted) == (name, "model", True)
    listed = api.client.get("/v1/models", headers=api.headers()).json()["data"]
    assert name not in {model["id"] for model in listed}
    assert api.client.get(f"/v1/models/{name}", headers=api.headers()).status_code == 404
    # Every name of the model or of its checkpoints is gone, on every route that serves them.
    for alias in (name, f"{name}:ckpt-step-10", job.id, tuned_id, checkpoint.id):
        assert chat_status(api, alias) == 404, alias
    body = {"model": name, "input": "hi"}
    assert api.client.post("/v1/responses", json=body, headers=api.headers()).status_code == 404
    kept = api.client.get(f"/v1/fine_tuning/jobs/{job.id}", headers=api.headers())
    assert kept.status_code == 200
    assert (kept.json()["status"], kept.json()["fine_tuned_model"]) == ("succeeded", None)
    assert delete(api, name, 404)["error"]["code"] == "model_not_found"


def test_another_projects_model_is_answered_as_a_missing_one_and_kept(api: Api, tmp_path):
    theirs = fine_tuned_name(register_tuned_model(api.service, "other", tmp_path))
    missing = theirs.rsplit(":", 1)[0] + ":tj-000000000000"

    errors = [delete(api, model, 404)["error"] for model in (theirs, missing)]

    assert errors[0]["message"].replace(theirs, "M") == errors[1]["message"].replace(missing, "M")
    assert errors[0]["code"] == errors[1]["code"] == "model_not_found"
    assert errors[0]["param"] == "model"
    theirs_listed = api.client.get("/v1/models", headers=api.headers(api.other_key)).json()
    assert theirs in {model["id"] for model in theirs_listed["data"]}


def test_base_models_and_checkpoints_cannot_be_deleted(api: Api, tmp_path):
    name = fine_tuned_name(register_tuned_model(api.service, "default", tmp_path))

    for model, says in ((TINY, "not a tuned model"), (f"{name}:ckpt-step-10", "checkpoint")):
        error = delete(api, model, 400)["error"]
        assert error["param"] == "model"
        assert says in error["message"]
        assert error["type"] == "invalid_request_error"
    listed = api.client.get("/v1/models", headers=api.headers()).json()["data"]
    assert name in {model["id"] for model in listed}
    assert api.client.delete(f"/v1/models/{name}").status_code == 401
