"""Ten tuned models of one base answer interleaved requests with one copy of the base in memory:
through the OpenAI API, with the models registered in the store as a runner leaves them."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from tests.api.test_models_api import TINY, fine_tuned_name, register_tuned_model
from tuneforge.api.app import create_app
from tuneforge.data.records import Conversation, Turn
from tuneforge.inference.batching import BatchingBackend
from tuneforge.inference.transformers_backend import TransformersBackend
from tuneforge.inference.types import GenerationParams, ModelTarget

PROMPT = "hello there"
MAX_TOKENS = 12


@pytest.fixture
def served(settings):
    """The app, with a transformers backend the test can inspect, and a key of ``default``."""
    inner = TransformersBackend(memory_budget_bytes=1 << 30, device="cpu")
    app = create_app(settings, run_scheduler=False, inference=BatchingBackend(inner))
    with TestClient(app) as client:
        _, key = app.state.service.keys.create("default", "test")
        yield client, app.state.service, inner, {"Authorization": f"Bearer {key}"}


def test_ten_tuned_models_share_one_base(served, adapters, tiny_source):
    client, service, inner, headers = served
    names = [
        fine_tuned_name(register_tuned_model(service, "default", adapter, suffix=f"a{index}"))
        for index, adapter in enumerate(adapters)
    ]

    # What each adapter says, from a backend of its own.
    reference = TransformersBackend(memory_budget_bytes=1 << 30, device="cpu")
    prompt = Conversation((Turn("user", PROMPT),))
    params = GenerationParams(max_output_tokens=MAX_TOKENS)

    def direct(adapter=None) -> str:
        target = ModelTarget(name="reference", base_source=tiny_source, adapter_path=adapter)
        return reference.generate(target, prompt, params).completions[0].text

    expected = {name: direct(adapter) for name, adapter in zip(names, adapters, strict=True)}
    expected[TINY] = direct()
    assert len(set(expected.values())) == len(expected)  # every model answers differently

    def ask(model: str) -> str:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "temperature": 0,
            "max_tokens": MAX_TOKENS,
        }
        response = client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]

    order = [*names, TINY] * 3
    random.Random(0).shuffle(order)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, order))

    assert answers == [expected[model] for model in order]
    assert len(inner.loaded_bases()) == 1
    assert list(inner.load_counts().values()) == [1]
