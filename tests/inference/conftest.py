"""Fixtures for the inference tests: the tiny models, LoRA adapters of them, and a backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.torch_threads import one_thread
from tuneforge.data.records import Conversation, Turn

PROMPTS = [
    Conversation((Turn("user", "hello there"),)),
    Conversation((Turn("user", "Classify: what a fantastic film"),), system="Answer briefly."),
    Conversation(
        (Turn("user", "hi"), Turn("model", "hello"), Turn("user", "name a fruit")),
    ),
]


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Every inference test decodes on one thread (tests/torch_threads.py says why)."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def tiny_source(models_dir) -> str:  # models_dir: the suite's tiny models (tests/conftest.py)
    from tuneforge.models.tiny import ensure_tiny_model

    return str(ensure_tiny_model("tuneforge/tiny-chat", models_dir))


@pytest.fixture(scope="session")
def large_source(models_dir) -> str:
    from tuneforge.models.tiny import ensure_tiny_model

    return str(ensure_tiny_model("tuneforge/tiny-chat-large", models_dir))


@pytest.fixture(scope="session")
def tokenizer(tiny_source):
    from tuneforge.models.loading import load_tokenizer

    return load_tokenizer(tiny_source)


@pytest.fixture(scope="session")
def adapters(tiny_source, tokenizer, tmp_path_factory) -> list[Path]:
    """Ten LoRA adapters of the tiny model, each with its own random lora_B weights."""
    from peft import LoraConfig, get_peft_model

    from tuneforge.models.loading import load_causal_lm

    root = tmp_path_factory.mktemp("adapters")
    config = LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(load_causal_lm(tiny_source), config)
    folders = []
    for index in range(10):
        generator = torch.Generator().manual_seed(index)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        folder = root / f"adapter-{index}"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders.append(folder)
    return folders


@pytest.fixture(scope="session")
def backend():
    from tuneforge.inference.transformers_backend import TransformersBackend

    return TransformersBackend(memory_budget_bytes=1 << 30, device="cpu")


@pytest.fixture(scope="session")
def base(tiny_source):
    from tuneforge.inference.types import ModelTarget

    return ModelTarget(name="tuneforge/tiny-chat", base_source=tiny_source)
