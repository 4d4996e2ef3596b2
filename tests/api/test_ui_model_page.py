"""The model page of a real (random) LoRA adapter: "Try it", where the tuned model and its base
answer side by side, turn after turn, with the sampling parameters and the system instruction
of the job's training data; and the merged weights' download."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
import torch

from tests.api.conftest import Api
from tests.api.test_models_api import TINY, register_tuned_model
from tests.api.test_ui import page, post_form, sign_in
from tests.helpers import random_lora_adapter
from tuneforge.data.records import Conversation, Turn
from tuneforge.inference.types import GenerationParams
from tuneforge.models.tiny import ensure_tiny_model
from tuneforge.store.models import TuningJob

SYSTEM = "Classify the sentiment: positive or negative."


@pytest.fixture(scope="module")
def adapter(models_dir, tmp_path_factory) -> Path:
    base = ensure_tiny_model(TINY, models_dir)
    return random_lora_adapter(base, tmp_path_factory.mktemp("tuned") / "adapter")


def line(user: str, answer: str, system: str | None = None) -> str:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages})


def tuned_model_trained_on(api: Api, adapter: Path, lines: list[str]) -> str:
    """The id of a tuned model whose job's training file holds ``lines``."""
    data = "\n".join(lines).encode()
    file_id = api.service.files.upload("default", "train.jsonl", io.BytesIO(data), "fine-tune").id
    job = register_tuned_model(api.service, "default", adapter)
    with api.service.db.session() as s:
        s.get(TuningJob, job.id).training_file = file_id
    return api.service.jobs.get("default", job.id).tuned_model.id


def answers(body: str, side: str) -> list[str]:
    """What the page's hidden fields carry for ``side``: its answers so far, in order."""
    found = re.findall(rf'name="history_{side}" value="([^"]*)"', body)
    return [html.unescape(value) for value in found]


def greedy(api: Api, model: str, turns: list[tuple[str, str]], system: str) -> str:
    conversation = Conversation(tuple(Turn(role, text) for role, text in turns), system)
    params = GenerationParams(max_output_tokens=6)
    result = api.service.generation.generate("default", model, conversation, params)
    return result.completions[0].text


def test_the_system_instruction_starts_as_the_training_datas_first_one(api: Api, adapter: Path):
    lines = [line("no system here", "ok")] + [line(f"q{n}", "a", SYSTEM) for n in range(9)]
    model = tuned_model_trained_on(api, adapter, lines)
    sign_in(api)

    body = page(api, f"/ui/models/{model}")

    assert f'name="system" rows="2">{SYSTEM}</textarea>' in body
    assert 'name="system" rows="2"></textarea>' in page(api, f"/ui/models/{TINY}")  # a base model


def test_the_tuned_model_and_its_base_answer_side_by_side_turn_after_turn(api: Api, adapter: Path):
    model = tuned_model_trained_on(api, adapter, [line(f"q{n}", "a", SYSTEM) for n in range(10)])
    sign_in(api)
    path = f"/ui/models/{model}"
    form = {"system": SYSTEM, "max_tokens": "6", "temperature": "0", "top_p": "1"}

    first = post_form(api, path, token_from=path, data={**form, "prompt": "great film"})

    assert first.status_code == 200, first.text
    [tuned_1], [base_1] = answers(first.text, "tuned"), answers(first.text, "base")
    assert tuned_1 == greedy(api, model, [("user", "great film")], SYSTEM)
    assert base_1 == greedy(api, TINY, [("user", "great film")], SYSTEM)
    assert tuned_1 != base_1  # two models, not one answer shown twice
    assert f"tuned: {model}" in first.text and f"base: {TINY}" in first.text
    assert len(re.findall(r"\d+ prompt tokens? · \d+ output tokens?", first.text)) == 2

    history = {"history_user": ["great film"], "history_tuned": [tuned_1], "history_base": [base_1]}
    second = post_form(api, path, token_from=path, data={**form, **history, "prompt": "and then?"})

    assert second.status_code == 200, second.text
    for side, name, earlier in (("tuned", model, tuned_1), ("base", TINY, base_1)):
        turns = [("user", "great film"), ("model", earlier), ("user", "and then?")]
        # each side saw the user's turns and its own first answer
        assert answers(second.text, side) == [earlier, greedy(api, name, turns, SYSTEM)]
    user_turns = re.findall(r'name="history_user" value="([^"]*)"', second.text)
    assert user_turns == ["great film", "and then?"]
    assert "new conversation" in second.text


def test_sampling_parameters_reach_the_models_and_bad_ones_are_named(api: Api):
    sign_in(api)
    path = f"/ui/models/{TINY}"

    sampled = post_form(api, path, token_from=path, data={
        "prompt": "hello", "temperature": "1.5", "top_p": "0.5", "max_tokens": "1"})  # fmt: skip

    assert sampled.status_code == 200, sampled.text
    assert "1 output token ·" in sampled.text  # max output tokens: 1
    assert re.search(r'name="temperature" [^>]*value="1.5"', sampled.text)
    kept = {"history_user": ["before"], "history_base": ["reply"]}
    refused = post_form(api, path, token_from=path, data={"prompt": "hello", "top_p": "0", **kept})
    assert refused.status_code == 400
    assert "top_p must be in (0, 1], got 0.0" in refused.text
    assert answers(refused.text, "base") == ["reply"]  # the conversation is kept
    assert "hello</textarea>" in refused.text


def test_a_conversation_that_does_not_pair_up_is_refused_with_a_message(api: Api):
    sign_in(api)
    path = f"/ui/models/{TINY}"

    response = post_form(
        api, path, token_from=path, data={"prompt": "hi", "history_user": ["a", "b"],
                                          "history_base": ["only one"]},
    )  # fmt: skip

    assert response.status_code == 400
    assert "the conversation in the form is incomplete" in response.text


def test_the_merged_weights_download_is_a_model_folder_that_answers_as_the_adapter(
    api: Api, adapter: Path, models_dir: Path, tmp_path: Path
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tuneforge.models.loading import load_causal_lm

    model = tuned_model_trained_on(api, adapter, [line(f"q{n}", "a") for n in range(10)])
    sign_in(api)
    assert f'href="/ui/models/{model}/download?merged=true"' in page(api, f"/ui/models/{model}")

    response = api.client.get(f"/ui/models/{model}/download?merged=true")

    assert response.status_code == 200, response.text
    assert f'filename="{model}-merged.zip"' in response.headers["content-disposition"]
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(tmp_path / "merged")
    names = {path.name for path in (tmp_path / "merged").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "README.md"} <= names
    assert "adapter_config.json" not in names
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")  # alone, no PEFT
    tuned = PeftModel.from_pretrained(load_causal_lm(ensure_tiny_model(TINY, models_dir)), adapter)
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.no_grad():
        expected, got = tuned(ids).logits, merged(ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
