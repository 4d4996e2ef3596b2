"""Jobs on datasets with media, run by a worker as the service runs them: each method that reads
media trains on them, and the job's statistics count the media and the tokens they cost. What
a method cannot read is refused when the job is created, naming the line and field."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.api.test_job_memory import events, run_next_job
from tests.api.test_openai_jobs import JOBS, create, upload
from tests.api.test_vertex import JOBS as VERTEX_JOBS
from tuneforge.data.media_samples import COLOURS, colour_image, write_media_task

VISION, AUDIO = "tuneforge/tiny-vision", "tuneforge/tiny-audio"
EXAMPLES = 12
IMAGE_TOKENS, AUDIO_TOKENS_A_SECOND = 64, 25  # the tiny models' placeholders


def colour_pairs(folder: Path) -> Path:
    """OpenAI DPO lines: a shape's image, its colour preferred to another."""
    rng = random.Random(0)
    lines = []
    for _ in range(EXAMPLES):
        colour = rng.choice(list(COLOURS))
        url = "data:image/png;base64," + base64.b64encode(colour_image(rng, colour)).decode()
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "?"}]
        lines.append({
            "input": {"messages": [{"role": "user", "content": content}]},
            "preferred_output": [{"role": "assistant", "content": colour}],
            "non_preferred_output": [
                {"role": "assistant", "content": next(c for c in COLOURS if c != colour)}
            ],
        })  # fmt: skip
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def tone_task(folder: Path) -> Path:
    train, _ = write_media_task(folder, "audio", (EXAMPLES, 1), dataset_format="openai")
    return train  # each tone lasts a second


@pytest.mark.parametrize(
    ("model", "method", "dataset", "media", "media_tokens"),
    [
        (VISION, {"type": "dpo"}, colour_pairs, "12 images", EXAMPLES * IMAGE_TOKENS),
        (AUDIO, {"type": "supervised"}, tone_task, "12 audio", EXAMPLES * AUDIO_TOKENS_A_SECOND),
    ],
    ids=["preference-images", "supervised-audio"],
)
def test_a_media_job_trains_and_counts_its_media(
    api: Api, tmp_path: Path, model, method, dataset, media, media_tokens
):
    file_id = upload(api, dataset(tmp_path))
    hyperparameters = {"hyperparameters": {"n_epochs": 1}}
    job = create(
        api, model=model, training_file=file_id,
        method={**method, method["type"]: hyperparameters},
    )  # fmt: skip

    run_next_job(api)

    finished = api.client.get(f"{JOBS}/{job['id']}", headers=api.headers()).json()
    assert finished["status"] == "succeeded", finished["error"]
    [processed] = [e for e in events(api, job["id"]) if e["message"].startswith("dataset proc")]
    assert processed["message"].endswith(f", {media} ({media_tokens} of the tokens)")
    kind = "image" if model == VISION else "audio"
    assert processed["data"]["media"] == {kind: EXAMPLES}
    assert processed["data"]["media_tokens"] == media_tokens


def test_preference_tuning_of_all_weights_on_images_is_refused_naming_line_and_field(
    api: Api, tmp_path: Path
):
    # TRL computes the reference of image pairs with the adapter disabled: LoRA only.
    file_id = upload(api, colour_pairs(tmp_path))
    body = {
        "baseModel": VISION,
        "preferenceOptimizationSpec": {
            "trainingDatasetUri": file_id, "tuningMode": "TUNING_MODE_FULL"
        },
    }  # fmt: skip

    response = api.client.post(VERTEX_JOBS, json=body, headers=api.headers())

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert (
        "line 1, input.messages[0].content[0].image_url.url: the preference method on all"
        " weights reads text only; it cannot take images"
    ) in error["message"]
