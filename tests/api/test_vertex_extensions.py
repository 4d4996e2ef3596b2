"""tuneforge's hyperparameters beyond Vertex's own, accepted in the same hyperParameters."""

from tests.api.conftest import Api

JOBS = "/v1/projects/p/locations/l/tuningJobs"


def test_extension_hyperparameters_reach_the_job(api: Api, tmp_path):
    from tuneforge.data.samples import write_task

    train = write_task(tmp_path / "data", "sentiment", sizes=(20, 5, 5))["train"]
    with train.open("rb") as handle:
        file_id = api.service.files.upload("default", "train.jsonl", handle, "fine-tune").id
    body = {
        "baseModel": "tuneforge/tiny-chat",
        "supervisedTuningSpec": {
            "trainingDatasetUri": file_id,
            "hyperParameters": {
                "epochCount": 2,
                "maxSequenceLength": 128,
                "warmupRatio": 0.1,
                "earlyStoppingPatience": 3,
                "packing": True,
            },
        },
    }
    response = api.client.post(JOBS, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    job_id = response.json()["name"].rsplit("/", 1)[-1]
    stored = api.service.jobs.get("default", job_id).job.hyperparameters
    assert stored == {
        "epochs": 2,
        "max_seq_length": 128,
        "warmup_ratio": 0.1,
        "early_stopping_patience": 3,
        "packing": True,
    }

    body["supervisedTuningSpec"]["hyperParameters"] = {"warmupRatio": 1.5}
    refused = api.client.post(JOBS, json=body, headers=api.headers())
    assert refused.status_code == 400
    assert "warmupRatio" in refused.json()["error"]["message"]
