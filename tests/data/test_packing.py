"""Packing: no attention and no loss across example boundaries."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from tuneforge.data.packing import pack_examples
from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import IGNORE_INDEX, TokenizedExample, tokenize_conversation
from tuneforge.engine.attention import PACKED_SDPA


def example(length: int, start: int = 10) -> TokenizedExample:
    ids = list(range(start, start + length))
    return TokenizedExample(input_ids=ids, labels=ids)


def test_rows_respect_length_and_keep_every_example():
    examples = [example(n, start=100 * n) for n in (7, 5, 4, 3, 3, 2)]
    rows = pack_examples(examples, row_length=10)
    assert all(len(r.input_ids) <= 10 for r in rows)
    assert sorted(n for r in rows for n in r.seq_lengths) == [2, 3, 3, 4, 5, 7]
    assert len(rows) == 3  # 24 tokens fit in three rows of ten, best fit decreasing


def test_position_ids_restart_and_first_token_has_no_label():
    rows = pack_examples([example(4, 10), example(3, 50)], row_length=8, pad_id=0)
    row = rows[0]
    assert row.position_ids == [0, 1, 2, 3, 0, 1, 2, 0]
    assert row.labels[0] == IGNORE_INDEX and row.labels[4] == IGNORE_INDEX
    assert row.labels[1:4] == [11, 12, 13] and row.labels[5:7] == [51, 52]
    assert row.input_ids[-1] == 0 and row.labels[-1] == IGNORE_INDEX
    assert row.seq_lengths == [4, 3, 1]


def test_too_long_example_is_cut_to_the_row():
    rows = pack_examples([example(12)], row_length=8)
    assert len(rows) == 1 and len(rows[0].input_ids) == 8


@pytest.fixture(scope="module")
def tiny(models_dir):
    tokenizer = AutoTokenizer.from_pretrained(models_dir / "tiny-chat")
    model = AutoModelForCausalLM.from_pretrained(models_dir / "tiny-chat").eval()
    return model, tokenizer


@pytest.mark.parametrize("attention", ["sdpa", PACKED_SDPA])
def test_packed_logits_equal_separate_logits(tiny, models_dir, attention):
    """A packed row computes exactly what each example computes alone (no cross-attention),
    when the model runs as training runs it: without a KV cache. With plain SDPA through a
    block-diagonal mask, and with the per-example SDPA the engine trains with on a CPU."""
    _, tokenizer = tiny
    model = AutoModelForCausalLM.from_pretrained(
        models_dir / "tiny-chat", attn_implementation=attention
    ).eval()
    conversations = [
        Conversation(
            system="s", turns=(Turn("user", "review: great film ->"), Turn("model", "ok"))
        ),
        Conversation(turns=(Turn("user", "review: dull ->"), Turn("model", "negative"))),
    ]
    examples = [tokenize_conversation(c, tokenizer) for c in conversations]
    row = pack_examples(examples, row_length=sum(len(e.input_ids) for e in examples))[0]
    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    batch = collator(
        [{"input_ids": row.input_ids, "labels": row.labels, "seq_lengths": row.seq_lengths}]
    )
    assert batch["position_ids"][0].tolist() == row.position_ids
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "labels"}  # as the Trainer passes it
        packed = model(**inputs, use_cache=False).logits[0]
        offset = 0
        for e in sorted(examples, key=lambda e: -len(e.input_ids)):  # best fit order
            alone = model(input_ids=torch.tensor([e.input_ids])).logits[0]
            assert torch.allclose(packed[offset : offset + len(e.input_ids)], alone, atol=1e-4)
            offset += len(e.input_ids)
