"""A job's devices on both APIs: kept, shown, and refused in each surface's own error shape
when the machine cannot honour them."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tuneforge.jobs import ranks
from tuneforge.machine import cpu_count

OPENAI_JOBS = "/v1/fine_tuning/jobs"
VERTEX_JOBS = "/v1/projects/p/locations/l/tuningJobs"


@pytest.fixture
def file_id(api: Api, tmp_path) -> str:
    from tuneforge.data.samples import write_task

    train = write_task(tmp_path / "data", "sentiment", sizes=(20, 5, 5))["train"]
    with train.open("rb") as handle:
        return api.service.files.upload("default", "train.jsonl", handle, "fine-tune").id


@pytest.fixture
def four_gpus(monkeypatch) -> None:
    monkeypatch.setattr(ranks, "gpu_count", lambda: 4)


def openai_body(file_id: str, **extra) -> dict:
    return {"model": "tuneforge/tiny-chat", "training_file": file_id, **extra}


def vertex_body(file_id: str, **extra) -> dict:
    spec = {"trainingDatasetUri": file_id, "hyperParameters": extra.pop("hyper", {})}
    return {"baseModel": "tuneforge/tiny-chat", "supervisedTuningSpec": spec, **extra}


def test_openai_jobs_keep_and_show_their_devices(api: Api, file_id, four_gpus) -> None:
    response = api.client.post(
        OPENAI_JOBS, json=openai_body(file_id, devices=4), headers=api.headers()
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["devices"] == 4 and job["hyperparameters"]["batch_size"] == "auto"
    assert api.service.jobs.get("default", job["id"]).job.devices == 4
    plain = api.client.post(OPENAI_JOBS, json=openai_body(file_id), headers=api.headers())
    assert plain.json()["devices"] == 1


def test_vertex_jobs_keep_and_show_their_devices(api: Api, file_id, four_gpus) -> None:
    response = api.client.post(
        VERTEX_JOBS, json=vertex_body(file_id, devices=2), headers=api.headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["devices"] == 2


@pytest.mark.parametrize("devices", [0, cpu_count() + 1])
def test_openai_refuses_devices_the_machine_cannot_give(api: Api, file_id, devices) -> None:
    response = api.client.post(
        OPENAI_JOBS, json=openai_body(file_id, devices=devices), headers=api.headers()
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "devices"
    assert "at least 1" in error["message"] or "more than this machine offers" in error["message"]


def test_openai_refuses_a_batch_the_devices_cannot_share(api: Api, file_id, four_gpus) -> None:
    body = openai_body(
        file_id,
        devices=4,
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 6}}},
    )
    response = api.client.post(OPENAI_JOBS, json=body, headers=api.headers())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "method.supervised.hyperparameters.batch_size"
    assert "does not split evenly over 4 devices" in error["message"]


def test_vertex_refuses_devices_in_googles_error_shape(api: Api, file_id, four_gpus) -> None:
    response = api.client.post(
        VERTEX_JOBS, json=vertex_body(file_id, devices=8), headers=api.headers()
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "devices 8 is more than this machine offers: it has 4 GPUs" in error["message"]

    body = vertex_body(file_id, devices=4, hyper={"batchSize": 6})
    response = api.client.post(VERTEX_JOBS, json=body, headers=api.headers())
    assert response.status_code == 400, response.text
    assert "supervisedTuningSpec.hyperParameters.batchSize" in response.json()["error"]["message"]
