"""A padding-free row through the engine's per-example attention trains as a padded batch does:
the same loss and the same gradients, in fp32 and under bf16 autocast."""

from __future__ import annotations

import contextlib

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import tokenize_conversation
from tuneforge.engine.attention import PACKED_SDPA
from tuneforge.engine.training import padding_free_collator

REVIEWS = ["superb", "a dull tedious mess of a film", "charming and warm, if long", "bad"]


def loss_and_gradients(folder, attention: str, batch: dict, autocast: bool):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attention)
    model.config.use_cache = False
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with context:
        loss = model(**batch).loss
    loss.backward()
    gradients = torch.cat([p.grad.flatten() for p in model.parameters()])
    return loss.detach().float(), gradients


# Measured: fp32 the same loss, gradients within 8e-7 of the largest; bf16 autocast, the loss
# within 2e-4, gradients within 1e-2. A row whose examples attend to each other is 6% off in
# loss, and 1.3 (of the largest gradient) in its gradients.
@pytest.mark.parametrize(
    ("autocast", "loss_tolerance", "gradient_tolerance"), [(False, 1e-5, 1e-4), (True, 2e-3, 5e-2)]
)
def test_packed_rows_give_the_padded_batchs_loss_and_gradients(
    models_dir, autocast, loss_tolerance, gradient_tolerance
):
    folder = models_dir / "tiny-chat"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = []
    for review in REVIEWS:
        conversation = Conversation(
            system="Classify.", turns=(Turn("user", f"review: {review} ->"), Turn("model", "ok"))
        )
        example = tokenize_conversation(conversation, tokenizer)
        rows.append({"input_ids": example.input_ids, "labels": example.labels})
    assert len({len(row["input_ids"]) for row in rows}) > 1  # a padded batch holds padding

    packed = padding_free_collator(tokenizer)(rows)  # what the engine trains on
    assert packed["input_ids"].shape[0] == 1
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(rows)
    assert (padded["attention_mask"] == 0).any()

    packed_loss, packed_gradients = loss_and_gradients(folder, PACKED_SDPA, packed, autocast)
    padded_loss, padded_gradients = loss_and_gradients(folder, "sdpa", padded, autocast)
    assert packed_loss == pytest.approx(padded_loss.item(), rel=loss_tolerance)
    scale = padded_gradients.abs().max()
    assert (packed_gradients - padded_gradients).abs().max() < gradient_tolerance * scale
