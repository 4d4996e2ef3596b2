"""End to end: a real ``tuneforge serve`` and the unmodified ``openai`` SDK call the Responses
API on a tuned model (a string, messages with instructions, a stream of events, the SDK's
stream helper) and then delete the model."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tests.api.test_models_api import TINY, fine_tuned_name, register_tuned_model
from tests.helpers import random_lora_adapter
from tuneforge.models.tiny import ensure_tiny_model
from tuneforge.service import Service
from tuneforge.store.db import open_database

pytestmark = pytest.mark.slow

PROMPT = "Classify: what a fantastic film"


@pytest.fixture
def tuned_model(live_server, models_dir, tmp_path) -> str:
    """A tuned model of project ``default`` in the live server's database (a random LoRA
    adapter, as a finished job leaves its checkpoint): serving it needs no training."""
    adapter = random_lora_adapter(ensure_tiny_model(TINY, models_dir), tmp_path / "adapter")
    db = open_database(live_server.settings.resolved_database_url)
    try:
        job = register_tuned_model(Service(db, live_server.settings), "default", adapter,
                                   suffix="e2e")  # fmt: skip
    finally:
        db.dispose()
    return fine_tuned_name(job)


def response_end(response) -> str:
    """The last event of a response's stream: response.completed, or response.incomplete."""
    return f"response.{response.status}"


def test_openai_sdk_responses_on_a_tuned_model_then_deletes_it(live_server, tuned_model):
    client = OpenAI(base_url=live_server.url + "/v1", api_key=live_server.key, max_retries=0)

    response = client.responses.create(
        model=tuned_model, input=PROMPT, temperature=0, max_output_tokens=6
    )
    chat = client.chat.completions.create(
        model=tuned_model,
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0,
        max_tokens=6,
    )
    assert response.output_text == chat.choices[0].message.content
    assert response.model == tuned_model
    assert response.usage.input_tokens == chat.usage.prompt_tokens
    base = client.responses.create(model=TINY, input=PROMPT, temperature=0, max_output_tokens=6)
    assert base.output_text != response.output_text

    instructed = client.responses.create(
        model=tuned_model,
        instructions="Answer briefly.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}],
        temperature=0,
        max_output_tokens=6,
    )
    expected = client.chat.completions.create(
        model=tuned_model,
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": PROMPT},
        ],
        temperature=0,
        max_tokens=6,
    )
    assert instructed.output_text == expected.choices[0].message.content

    events = list(
        client.responses.create(
            model=tuned_model, input=PROMPT, temperature=0, max_output_tokens=6, stream=True
        )
    )
    assert events[0].type == "response.created"
    assert events[-1].type == response_end(response)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text == response.output_text

    # The SDK's stream helper rebuilds the response from the events, item by item. A random
    # adapter's answer runs past six tokens, so the response is incomplete and the helper's
    # get_final_response (which waits for response.completed) is not for it, as on OpenAI;
    # tests/e2e/test_openai_sdk.py calls it on a trained model's completed answer.
    with client.responses.stream(
        model=tuned_model, input=PROMPT, temperature=0, max_output_tokens=6
    ) as stream:
        helped = list(stream)
    streamed = "".join(e.delta for e in helped if e.type == "response.output_text.delta")
    assert helped[-1].type == response_end(response)
    assert streamed == helped[-1].response.output_text == response.output_text

    deleted = client.models.delete(tuned_model)
    assert (deleted.id, deleted.deleted) == (tuned_model, True)
    assert tuned_model not in {model.id for model in client.models.list()}
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=tuned_model, input=PROMPT)
    with pytest.raises(openai.NotFoundError):
        client.models.delete(tuned_model)
    job_id = tuned_model.rsplit(":", 1)[1]
    assert client.fine_tuning.jobs.retrieve(job_id).status == "succeeded"
