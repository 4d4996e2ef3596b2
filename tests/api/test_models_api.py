"""GET /v1/models: the base models, and the tuned models of the key's project only."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai.types import Model

from tuneforge.models.names import openai_model_name
from tuneforge.service import Service
from tuneforge.store import repo
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState
from tuneforge.store.types import utcnow

pytestmark = pytest.mark.both_databases

TINY = "tuneforge/tiny-chat"


def register_tuned_model(
    service: Service, project_id: str, adapter: Path, *, suffix: str | None = None
) -> TuningJob:
    """A succeeded job of the tiny model whose one checkpoint is ``adapter``, and its tuned
    model: the rows a runner leaves behind."""
    with service.db.session() as s:
        repo.ensure_project(s, project_id)
        job = repo.create_job(
            s, project_id, base_model=TINY, training_file="file-unused", suffix=suffix
        )
        job.state, job.ended_at = JobState.SUCCEEDED, utcnow()
        s.flush()
        repo.add_checkpoint(s, job.id, epoch=1, step=10, path=str(adapter), is_default=True)
        repo.create_tuned_model(s, job.id)
        return job


def fine_tuned_name(job: TuningJob) -> str:
    return openai_model_name(job.base_model, job.project_id, job.suffix, job.id)


def test_models_lists_base_models_and_the_projects_tuned_models(api, tmp_path):
    mine = register_tuned_model(api.service, "default", tmp_path, suffix="mine")
    theirs = register_tuned_model(api.service, "other", tmp_path, suffix="theirs")

    response = api.client.get("/v1/models", headers=api.headers())

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    models = {m["id"]: Model.model_validate(m) for m in body["data"]}
    assert {TINY, "tuneforge/tiny-chat-large"} <= set(models)
    assert models[TINY].owned_by == "tuneforge"
    assert fine_tuned_name(mine) in models
    assert models[fine_tuned_name(mine)].owned_by == "default"
    assert models[fine_tuned_name(mine)].created > 0
    assert fine_tuned_name(theirs) not in models


def test_one_model_by_name(api, tmp_path):
    mine = register_tuned_model(api.service, "default", tmp_path, suffix="mine")
    theirs = register_tuned_model(api.service, "other", tmp_path)

    for name in (TINY, fine_tuned_name(mine)):
        response = api.client.get(f"/v1/models/{name}", headers=api.headers())
        assert response.status_code == 200
        assert response.json()["id"] == name

    missing = api.client.get(f"/v1/models/{fine_tuned_name(theirs)}", headers=api.headers())
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert missing.json()["error"]["param"] == "model"


def test_models_need_a_key(api):
    response = api.client.get("/v1/models")

    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.json()["error"]["type"] == "authentication_error"
