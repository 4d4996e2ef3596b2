"""Reward models through the API: tuned with Vertex's request shape (tuneforge's
``rewardModelTuningSpec``), they score conversations at ``POST /v1/score``; they refuse to chat,
and other models refuse to score."""

from __future__ import annotations

import pytest

from tuneforge.jobs.runner import run_job
from tuneforge.store import repo

pytestmark = pytest.mark.both_databases

PARENT = "projects/p/locations/local"
TINY = "tuneforge/tiny-chat"
SYSTEM = "Classify the sentiment of the review as positive or negative."


def upload(api, path) -> str:
    with path.open("rb") as stream:
        return api.service.files.upload("default", path.name, stream, "fine-tune").id


@pytest.fixture
def reward_model(api, preference_files) -> str:
    created = api.client.post(
        f"/v1/{PARENT}/tuningJobs",
        headers=api.headers(),
        json={
            "baseModel": TINY,
            "rewardModelTuningSpec": {
                "trainingDatasetUri": upload(api, preference_files["train"]),
                "hyperParameters": {"epochCount": 3},
            },
        },
    )
    assert created.status_code == 200, created.text
    with api.service.db.session() as s:
        job = repo.claim_next_job(s, "test-worker", capacity=1)
    run_job(api.service.db, api.service.settings, job.id, "test-worker")
    done = api.client.get(f"/v1/{created.json()['name']}", headers=api.headers()).json()
    assert done["state"] == "JOB_STATE_SUCCEEDED", done
    return done["tunedModel"]["model"].rsplit("/", 1)[-1]


def conversation(review: str, answer: str) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"review: {review} ->"},
        {"role": "assistant", "content": answer},
    ]


def score(api, **body):
    return api.client.post("/v1/score", json=body, headers=api.headers())


def test_a_reward_model_scores_the_right_answer_higher(api, reward_model):
    response = score(
        api,
        model=reward_model,
        conversations=[
            conversation("delightful wonderful", "positive"),
            conversation("delightful wonderful", "negative"),
            conversation("dull tedious mess", "negative"),
            conversation("dull tedious mess", "positive"),
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == reward_model
    assert [d["index"] for d in body["data"]] == [0, 1, 2, 3]
    scores = [d["score"] for d in body["data"]]
    assert scores[0] > scores[1] and scores[2] > scores[3]


def test_a_reward_model_does_not_chat_and_a_chat_model_does_not_score(api, reward_model):
    chat = api.client.post(
        "/v1/chat/completions",
        json={"model": reward_model, "messages": [{"role": "user", "content": "hi"}]},
        headers=api.headers(),
    )
    assert chat.status_code == 400
    assert "is a reward model" in chat.json()["error"]["message"]
    scored = score(api, model=TINY, conversations=[conversation("fine", "positive")])
    assert scored.status_code == 400
    assert "is not a reward model" in scored.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"conversations": [[{"role": "user", "content": "hi"}]]}, "conversations[0]"),
        ({"conversations": []}, "conversations"),
        ({"conversations": [[]]}, "conversations[0]"),
        ({"conversations": [conversation("a", "b")], "temperature": 1}, "temperature"),
    ],
)
def test_bad_score_requests_name_what_is_wrong(api, body, fragment):
    response = score(api, model=TINY, **body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


def test_an_unknown_model_is_not_found(api):
    response = score(api, model="ft:nope", conversations=[conversation("a", "positive")])
    assert response.status_code == 404
