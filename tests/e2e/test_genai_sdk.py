"""End to end: a real ``tuneforge serve`` and the unmodified google-genai SDK in Vertex mode tune
the tiny model on an uploaded file, list and cancel jobs, and serve the tuned model through
``generate_content`` above the accuracy bar."""

from __future__ import annotations

import time
import warnings

import pytest
from google import genai
from google.genai import types

from tuneforge.data.samples import SENTIMENT_SYSTEM

pytestmark = pytest.mark.slow
warnings.filterwarnings("ignore", message=".*experimental.*")

TINY = "tuneforge/tiny-chat"
PROJECT, LOCATION = "e2e-project", "us-central1"
EPOCHS = 5
ACCURACY_BAR = 0.9
JOB_TIMEOUT_S = 300.0


def vertex_client(server) -> genai.Client:
    return server.vertex_client(PROJECT, LOCATION)


def upload_file(server, path) -> str:
    uploaded = server.upload(path)
    assert uploaded["status"] == "processed"
    return uploaded["id"]


def wait_until_done(client: genai.Client, name: str) -> types.TuningJob:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = client.tunings.get(name=name)
        if job.has_ended:
            return job
        time.sleep(0.5)
    raise AssertionError(f"{name} did not finish in {JOB_TIMEOUT_S} s: {job.state}")


def test_genai_sdk_tunes_lists_cancels_and_serves(live_server, sentiment_files, sentiment):
    client = vertex_client(live_server)
    train = upload_file(live_server, sentiment_files["train"])

    job = client.tunings.tune(
        base_model=TINY,
        training_dataset=types.TuningDataset(gcs_uri=train),
        config=types.CreateTuningJobConfig(
            epoch_count=EPOCHS, tuned_model_display_name="sentiment-e2e"
        ),
    )
    assert job.name.startswith(f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/")
    # A second job waits behind the first (one slot on a CPU machine) and is cancelled.
    second = client.tunings.tune(
        base_model=TINY, training_dataset=types.TuningDataset(gcs_uri=f"files/{train}")
    )
    client.tunings.cancel(name=second.name)

    job = wait_until_done(client, job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED, job.error
    assert job.tuning_job_metadata.completed_epoch_count == EPOCHS
    assert [c.epoch for c in job.tuned_model.checkpoints] == list(range(1, EPOCHS + 1))
    assert job.tuning_data_stats.supervised_tuning_data_stats.tuning_dataset_example_count == 400
    assert client.tunings.get(name=second.name).state == types.JobState.JOB_STATE_CANCELLED

    listed = {j.name: j.state for j in client.tunings.list()}
    assert listed == {
        job.name: types.JobState.JOB_STATE_SUCCEEDED,
        second.name: types.JobState.JOB_STATE_CANCELLED,
    }

    config = types.GenerateContentConfig(
        system_instruction=SENTIMENT_SYSTEM, temperature=0, max_output_tokens=4
    )
    hits = 0
    for example in sentiment["test"]:
        response = client.models.generate_content(
            model=job.tuned_model.endpoint, contents=example.turns[-2].text, config=config
        )
        hits += (response.text or "").strip() == example.turns[-1].text
    accuracy = hits / len(sentiment["test"])
    assert accuracy >= ACCURACY_BAR, f"exact match {accuracy:.2f} < {ACCURACY_BAR}"
