"""End to end: the tiny media models learn what only their media can tell. A real ``tuneforge
serve`` tunes ``tuneforge/tiny-vision`` on the colour of a shape (through the unmodified openai
SDK, images as data URLs, and through google-genai in Vertex mode, images inline) and on the
figure printed on a PDF page, and ``tuneforge/tiny-audio`` on whether a tone is high or low
(both through google-genai). Each reaches at least 0.9 held-out exact match; the untuned base
matches none."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.genai import types
from openai import OpenAI

from tuneforge.data.media_samples import MediaExample, media_examples, write_media_task

pytestmark = pytest.mark.slow

VISION, AUDIO = "tuneforge/tiny-vision", "tuneforge/tiny-audio"
SIZES = (200, 60)
EXACT_MATCH_BAR = 0.9
JOB_TIMEOUT_S = 900.0
# Epochs per task; every other hyperparameter is the default (the learning rate by the language
# model's width, 6.4e-3; batches of 4). Through the engine over data seeds 0-2 each reached
# 1.00 held-out exact match (see the README's media section).
EPOCHS = {"image": 3, "document": 8, "audio": 3}


@pytest.fixture
def server(monkeypatch, request):
    """The live server, its job runners on one torch thread each (see test_openai_sdk)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return request.getfixturevalue("live_server")


def share(results: list[bool]) -> float:
    return sum(results) / len(results)


def held_out(kind) -> list[MediaExample]:
    return media_examples(kind, SIZES[1], seed=10_000)  # write_media_task's test split


def wait(check, what: str) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, f"{what} did not finish"
        time.sleep(1)


def test_the_colour_of_a_shape_through_the_openai_sdk(server, tmp_path):
    openai = OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)
    train_path, _ = write_media_task(tmp_path, "image", SIZES, dataset_format="openai")
    with train_path.open("rb") as handle:
        train = openai.files.create(file=handle, purpose="fine-tune")
    assert train.status == "processed", train
    job = openai.fine_tuning.jobs.create(
        model=VISION,
        training_file=train.id,
        hyperparameters={"n_epochs": EPOCHS["image"]},
        suffix="colours",
    )
    wait(
        lambda: openai.fine_tuning.jobs.retrieve(job.id).status in ("succeeded", "failed"),
        "the OpenAI job",
    )
    job = openai.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error

    def answer(model: str, example: MediaExample) -> bool:
        url = "data:image/png;base64," + base64.b64encode(example.data).decode()
        completion = openai.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": url}},
                        {"type": "text", "text": example.question},
                    ],
                }
            ],
            temperature=0,
            max_tokens=8,
        )
        return completion.choices[0].message.content.strip() == example.answer

    examples = held_out("image")
    with ThreadPoolExecutor(max_workers=4) as pool:
        tuned = list(pool.map(lambda e: answer(job.fine_tuned_model, e), examples))
        base = list(pool.map(lambda e: answer(VISION, e), examples[:20]))
    assert share(tuned) >= EXACT_MATCH_BAR, f"{share(tuned):.2f} exact match"
    assert share(base) == 0


@pytest.mark.parametrize(
    ("kind", "model"), [("image", VISION), ("document", VISION), ("audio", AUDIO)]
)
def test_each_media_task_through_google_genai_in_vertex_mode(server, tmp_path, kind, model):
    vertex = server.vertex_client("e2e-project", "us-central1")
    train_path, _ = write_media_task(tmp_path, kind, SIZES, dataset_format="vertex")
    uploaded = server.upload(train_path)
    assert uploaded["status"] == "processed", uploaded
    job = vertex.tunings.tune(
        base_model=model,
        training_dataset=types.TuningDataset(gcs_uri=uploaded["id"]),
        config=types.CreateTuningJobConfig(epoch_count=EPOCHS[kind]),
    )
    wait(lambda: vertex.tunings.get(name=job.name).has_ended, "the Vertex job")
    job = vertex.tunings.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED, job.error
    config = types.GenerateContentConfig(temperature=0, max_output_tokens=8)

    def answer(endpoint: str, example: MediaExample) -> bool:
        response = vertex.models.generate_content(
            model=endpoint,
            contents=[
                types.Part.from_bytes(data=example.data, mime_type=example.mime_type),
                example.question,
            ],
            config=config,
        )
        return (response.text or "").strip() == example.answer

    examples = held_out(kind)
    with ThreadPoolExecutor(max_workers=4) as pool:
        tuned = list(pool.map(lambda e: answer(job.tuned_model.endpoint, e), examples))
        base = list(pool.map(lambda e: answer(model, e), examples[:20]))
    assert share(tuned) >= EXACT_MATCH_BAR, f"{kind}: {share(tuned):.2f} exact match"
    assert share(base) == 0
