"""A model of real size and shape: about 100M parameters in Qwen2's architecture, stored in bf16,
with Qwen2-Instruct's own ChatML template (a default system turn included) and a 32k-row
embedding. It tunes with LoRA (crashing mid-epoch and resuming there) and with all weights
(checkpoints kept in bf16 without optimizer state), and the tuned model answers."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch

from tests.engine.conftest import CrashAt, SaveWatcher, holding_optimizer
from tuneforge.data.records import Conversation, Turn
from tuneforge.engine.checkpoints import folder_bytes
from tuneforge.engine.run import run_tuning
from tuneforge.engine.spec import Hyperparameters, TuningSpec
from tuneforge.inference.transformers_backend import TransformersBackend
from tuneforge.inference.types import GenerationParams, ModelTarget
from tuneforge.models.tiny import build_tokenizer

pytestmark = pytest.mark.slow

# Qwen2-0.5B-Instruct's chat template, as published.
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SHAPE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "intermediate_size": 2048,
    "vocab_size": 32000,
    "tie_word_embeddings": True,
    "max_position_embeddings": 2048,
}


@pytest.fixture(scope="module", autouse=True)
def small_models_back_on_one_thread():
    """While this module's large models are held, the worker runs models on both cores
    (models/threads.py). Once they are let go, the tiny models the worker runs after them must be
    back on one thread: with the suite's two workers on two cores, their decoding spins many
    times slower on two."""
    from tuneforge.models import threads

    torch_threads = torch.get_num_threads()
    try:
        yield
        gc.collect()
        assert threads.largest_model_on_cpu() < threads.SMALL_MODEL_PARAMETERS
    finally:
        torch.set_num_threads(torch_threads)


@pytest.fixture(scope="module")
def qwen2_shaped(tmp_path_factory) -> tuple[Path, int]:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    folder = tmp_path_factory.mktemp("roots") / "qwen2-100m"
    tokenizer = build_tokenizer(vocab_size=2048, max_length=2048)
    tokenizer.chat_template = QWEN2_CHAT_TEMPLATE
    torch.manual_seed(0)
    config = Qwen2Config(
        **SHAPE, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, sum(p.numel() for p in model.parameters())


@pytest.fixture
def midsize_settings(settings, qwen2_shaped):
    folder, _ = qwen2_shaped
    return settings.model_copy(update={"model_roots": [folder.parent], "resume_point_steps": 2})


def test_the_model_is_mid_sized(qwen2_shaped):
    _, parameters = qwen2_shaped
    assert 90e6 < parameters < 110e6


def test_lora_crashes_mid_epoch_resumes_there_and_the_tuned_model_answers(
    qwen2_shaped, midsize_settings, sentiment, tmp_path
):
    folder, _ = qwen2_shaped
    train = sentiment["train"][:16]
    spec = TuningSpec(
        base_model=str(folder), hyperparameters=Hyperparameters(epochs=2, batch_size=4)
    )
    output = tmp_path / "lora"
    crashing = CrashAt(step=7)
    with pytest.raises(KeyboardInterrupt):
        run_tuning(spec, train, [], output, midsize_settings, crashing)

    resumer = SaveWatcher(output / "checkpoints")
    result = run_tuning(spec, train, [], output, midsize_settings, resumer)
    assert resumer.plans[0].resumed_from_step == 6  # epoch 2's second step: mid-epoch
    assert result.outcome == "succeeded"
    assert [c.path.name for c in result.checkpoints] == ["epoch-1", "epoch-2"]
    assert resumer.steps[-1].loss < 0.7 * crashing.steps[0].loss  # 10.7 -> 5.8 measured

    backend = TransformersBackend(8 << 30)
    target = ModelTarget(
        name="tuned", base_source=str(folder), adapter_path=result.default_checkpoint.path
    )
    prompt = Conversation(turns=(Turn("user", sentiment["test"][0].turns[0].text),))
    [answer] = backend.generate_batch(target, [prompt], GenerationParams(max_output_tokens=4))
    assert answer.completions[0].output_tokens >= 1


def test_full_tuning_keeps_bf16_weights_without_optimizer_state(
    qwen2_shaped, midsize_settings, sentiment, tmp_path, capsys
):
    folder, parameters = qwen2_shaped
    output = tmp_path / "full"
    newest_save_bytes: list[int] = []

    class Measure(SaveWatcher):
        def on_checkpoint(self, checkpoint):
            super().on_checkpoint(checkpoint)
            newest_save_bytes.append(folder_bytes(checkpoint.path))

    spec = TuningSpec(
        base_model=str(folder),
        mode="full",
        hyperparameters=Hyperparameters(epochs=2, batch_size=4),
    )
    result = run_tuning(spec, sentiment["train"][:8], [], output, midsize_settings,
                        Measure(output / "checkpoints"))  # fmt: skip

    assert result.outcome == "succeeded"
    assert holding_optimizer(output / "checkpoints") == []
    kept = [folder_bytes(c.path) for c in result.checkpoints]
    # As saved (what every epoch used to keep): fp32 weights and AdamW's two fp32 moments.
    assert min(newest_save_bytes) > parameters * 12
    for size in kept:  # kept: bf16 weights and the tokenizer's files
        assert parameters * 2 <= size < parameters * 2 + (8 << 20)
    with capsys.disabled():
        print(
            f"\n100M full fine-tuning, disk per checkpoint: {min(newest_save_bytes) / 1e6:.0f} MB "
            f"as saved -> {max(kept) / 1e6:.0f} MB kept"
        )
