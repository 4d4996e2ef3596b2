"""``quantization`` (QLoRA) on both APIs: kept with the job and shown, a wrong value or a
combination that cannot train refused at create time in each API's error shape."""

from __future__ import annotations

from tests.api.test_vertex import JOBS as VERTEX_JOBS
from tests.api.test_vertex import supervised

TINY = "tuneforge/tiny-chat"
OPENAI_JOBS = "/v1/fine_tuning/jobs"


def upload(api, sentiment_files) -> str:
    with sentiment_files["train"].open("rb") as stream:
        return api.service.files.upload("default", "train.jsonl", stream, "fine-tune").id


def openai_create(api, train_file: str, **hyperparameters):
    method = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
    body = {"model": TINY, "training_file": train_file, "method": method}
    return api.client.post(OPENAI_JOBS, json=body, headers=api.headers())


def test_openai_takes_quantization_among_the_hyperparameters(api, sentiment_files):
    train_file = upload(api, sentiment_files)
    created = openai_create(api, train_file, quantization="nf4")
    assert created.status_code == 200, created.text
    stored = api.service.jobs.get("default", created.json()["id"]).job
    assert stored.hyperparameters == {"quantization": "nf4"}

    refused = openai_create(api, train_file, quantization="int3")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "method.supervised.hyperparameters.quantization"
    assert "nf4" in error["message"]


def test_vertex_takes_quantization_and_refuses_it_with_full_fine_tuning(api, sentiment_files):
    train_file = upload(api, sentiment_files)
    created = api.client.post(
        VERTEX_JOBS,
        json=supervised(train_file, hyperParameters={"quantization": "nf4"}),
        headers=api.headers(),
    )
    assert created.status_code == 200, created.text
    spec = created.json()["supervisedTuningSpec"]
    assert spec["hyperParameters"]["quantization"] == "nf4"

    full = supervised(
        train_file, hyperParameters={"quantization": "nf4"}, tuningMode="TUNING_MODE_FULL"
    )
    refused = api.client.post(VERTEX_JOBS, json=full, headers=api.headers())
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "supervisedTuningSpec.hyperParameters.quantization" in error["message"]
    assert "LoRA adapter only" in error["message"]
