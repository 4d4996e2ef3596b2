"""End to end: a real ``tuneforge serve`` and the unmodified ``openai`` SDK upload a file, tune
the tiny model, follow the job's events and checkpoints, chat with the tuned model above the
accuracy bar (also streamed, and through the Responses API), cancel a job, and start a DPO
job."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

from tuneforge.data.records import Conversation
from tuneforge.data.samples import SENTIMENT_SYSTEM, write_preference_task
from tuneforge.jobs.runner import METRICS_CSV_COLUMNS

pytestmark = pytest.mark.slow

TINY = "tuneforge/tiny-chat"
EPOCHS = 5
ACCURACY_BAR = 0.9
JOB_TIMEOUT_S = 300.0
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def server(monkeypatch, request):
    """The live server, its job runners on one torch thread each: on two shared cores, two
    intra-op threads make the tiny model train about seven times slower."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return request.getfixturevalue("live_server")


def wait_until_done(client: OpenAI, job_id: str) -> FineTuningJob:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in FINISHED:
            return job
        time.sleep(0.5)
    raise AssertionError(f"{job_id} did not finish in {JOB_TIMEOUT_S} s: {job.status}")


def messages(example: Conversation) -> list[dict[str, str]]:
    """The example's prompt (its answer left out), with the system prompt it was tuned with."""
    return [
        {"role": "system", "content": SENTIMENT_SYSTEM},
        {"role": "user", "content": example.turns[0].text},
    ]


def test_openai_sdk_tunes_follows_chats_streams_and_cancels(
    server, sentiment_files, sentiment, tmp_path
):
    client = OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)
    with sentiment_files["train"].open("rb") as handle:
        train = client.files.create(file=handle, purpose="fine-tune")
    assert train.status == "processed"

    job = client.fine_tuning.jobs.create(
        model=TINY,
        training_file=train.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": EPOCHS}}},
        suffix="sentiment",
        metadata={"test": "e2e"},
    )
    assert job.status in {"queued", "validating_files", "running"}
    # A second job waits behind the first (one slot on a CPU machine) and is cancelled.
    second = client.fine_tuning.jobs.create(
        model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1}
    )
    assert client.fine_tuning.jobs.cancel(second.id).status == "cancelled"
    # DPO is the preference method; the job is accepted (and cancelled: only the SFT one runs).
    preference = write_preference_task(tmp_path / "preference", sizes=(20, 5, 5))
    with preference["train"].open("rb") as handle:
        pairs = client.files.create(file=handle, purpose="fine-tune")
    dpo = client.fine_tuning.jobs.create(
        model=TINY,
        training_file=pairs.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
    )
    assert dpo.method.type == "dpo" and dpo.method.dpo.hyperparameters.beta == 0.1
    client.fine_tuning.jobs.cancel(dpo.id)

    job = wait_until_done(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith(f"ft:{TINY}:default:sentiment:")
    listed = client.fine_tuning.jobs.list(limit=5, metadata={"test": "e2e"})
    assert [j.id for j in listed.data] == [job.id]

    events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
    assert events[0].message == "tuning job succeeded"  # newest first
    assert any(event.type == "metrics" and "train_loss" in event.data for event in events)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id, limit=10).data
    assert len(checkpoints) == EPOCHS
    assert checkpoints[0].fine_tuned_model_checkpoint == (
        f"{job.fine_tuned_model}:ckpt-step-{checkpoints[0].step_number}"
    )
    assert checkpoints[0].metrics.train_loss is not None
    results = client.files.content(job.result_files[0]).text
    assert results.splitlines()[0] == ",".join(METRICS_CSV_COLUMNS)

    def answer(example: Conversation) -> str:
        completion = client.chat.completions.create(
            model=job.fine_tuned_model, messages=messages(example), temperature=0, max_tokens=4
        )
        return completion.choices[0].message.content.strip()

    held_out = sentiment["test"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(answer, held_out))
    expected = [example.turns[-1].text for example in held_out]
    accuracy = sum(a == e for a, e in zip(answers, expected, strict=True)) / len(held_out)
    assert accuracy >= ACCURACY_BAR, list(zip(answers, expected, strict=True))[:10]

    stream = client.chat.completions.create(
        model=job.fine_tuned_model,
        messages=messages(held_out[0]),
        temperature=0,
        max_tokens=4,
        stream=True,
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert streamed.strip() == answers[0]

    # The Responses API answers as chat completions do; the answer ends before the token
    # limit, so the response is completed and the SDK's stream helper returns it whole.
    response = client.responses.create(
        model=job.fine_tuned_model,
        instructions=SENTIMENT_SYSTEM,
        input=held_out[0].turns[0].text,
        temperature=0,
        max_output_tokens=4,
    )
    assert (response.status, response.output_text.strip()) == ("completed", answers[0])
    with client.responses.stream(
        model=job.fine_tuned_model,
        instructions=SENTIMENT_SYSTEM,
        input=[{"role": "user", "content": held_out[0].turns[0].text}],
        temperature=0,
        max_output_tokens=4,
    ) as events:
        final = events.get_final_response()
    assert final.output_text == response.output_text

    at_checkpoint = client.chat.completions.create(
        model=checkpoints[-1].fine_tuned_model_checkpoint,
        messages=messages(held_out[0]),
        max_tokens=4,
    )
    assert at_checkpoint.model == checkpoints[-1].fine_tuned_model_checkpoint

    models = {model.id for model in client.models.list()}
    assert {TINY, job.fine_tuned_model} <= models
