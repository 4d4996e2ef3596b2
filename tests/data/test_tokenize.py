"""Loss masks, checked token by token against a hand-built expectation."""

import pytest
from transformers import AutoTokenizer

from tuneforge.data.records import Conversation, PreferenceExample, Turn
from tuneforge.data.tokenize import (
    IGNORE_INDEX,
    count_tokens,
    prompt_ids,
    prompt_token_runs,
    token_bytes,
    tokenize_conversation,
)
from tuneforge.models.loading import FALLBACK_CHAT_TEMPLATE


@pytest.fixture(scope="module")
def tokenizer(models_dir):
    return AutoTokenizer.from_pretrained(models_dir / "tiny-chat")


def labelled_pieces(tokenizer, tokenized):
    """The decoded text of each run of labelled tokens."""
    pieces, current = [], []
    for token, label in zip(tokenized.input_ids, tokenized.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token  # a label is the token itself (the model shifts)
            current.append(token)
        elif current:
            pieces.append(tokenizer.decode(current))
            current = []
    if current:
        pieces.append(tokenizer.decode(current))
    return pieces


def test_mask_token_by_token(tokenizer):
    conversation = Conversation(
        system="be brief",
        turns=(Turn("user", "hi"), Turn("model", "positive"), Turn("user", "again")),
    )
    conversation = Conversation(
        system=conversation.system,
        turns=(*conversation.turns, Turn("model", "negative")),
    )
    tokenized = tokenize_conversation(conversation, tokenizer)
    # Build the expectation by hand from the template's pieces.
    expected_ids: list[int] = []
    expected_labels: list[int] = []

    def add(text: str, trained: bool) -> None:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        expected_ids.extend(ids)
        expected_labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))

    add("<|im_start|>system\nbe brief<|im_end|>\n", False)
    add("<|im_start|>user\nhi<|im_end|>\n", False)
    add("<|im_start|>assistant\n", False)
    add("positive<|im_end|>\n", True)
    add("<|im_start|>user\nagain<|im_end|>\n", False)
    add("<|im_start|>assistant\n", False)
    add("negative<|im_end|>\n", True)
    assert tokenized.input_ids == expected_ids
    assert tokenized.labels == expected_labels


def test_weight_zero_turn_carries_no_label(tokenizer):
    conversation = Conversation(
        turns=(
            Turn("user", "a"),
            Turn("model", "positive", weight=0),
            Turn("user", "b"),
            Turn("model", "negative"),
        )
    )
    pieces = labelled_pieces(tokenizer, tokenize_conversation(conversation, tokenizer))
    assert pieces == ["negative<|im_end|>\n"]


def test_every_model_turn_is_labelled_and_nothing_else(tokenizer):
    turns = []
    for i in range(4):
        turns += [Turn("user", f"review: great {i} ->"), Turn("model", f"label {i}")]
    tokenized = tokenize_conversation(Conversation(turns=tuple(turns), system="sys"), tokenizer)
    assert labelled_pieces(tokenizer, tokenized) == [f"label {i}<|im_end|>\n" for i in range(4)]


def test_truncation_cuts_and_flags(tokenizer):
    conversation = Conversation(turns=(Turn("user", "great " * 50), Turn("model", "positive")))
    tokenized = tokenize_conversation(conversation, tokenizer, max_length=16)
    assert tokenized.truncated
    assert len(tokenized.input_ids) == len(tokenized.labels) == 16
    assert tokenized.trained_tokens == 0


def test_template_without_special_tokens(tokenizer):
    """The fallback template (models published without one) masks just as well."""
    tokenizer = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    conversation = Conversation(system="s", turns=(Turn("user", "hi"), Turn("model", "negative")))
    pieces = labelled_pieces(tokenizer, tokenize_conversation(conversation, tokenizer))
    # "Assistant: negative": the first trained token is " negative", space included.
    assert pieces == [" negative<|im_end|>\n"]


def test_prompt_ids_end_with_generation_prompt(tokenizer):
    ids = prompt_ids(Conversation(turns=(Turn("user", "hi"),)), tokenizer)
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_count_tokens_splits_input_and_output(tokenizer):
    conversation = Conversation(turns=(Turn("user", "hi"), Turn("model", "positive")))
    input_tokens, output_tokens = count_tokens(conversation, tokenizer)
    total = len(tokenize_conversation(conversation, tokenizer).input_ids)
    assert output_tokens == len(tokenizer("positive<|im_end|>\n")["input_ids"])
    assert input_tokens + output_tokens == total
    preference = PreferenceExample(
        prompt=Conversation(turns=(Turn("user", "hi"),)), chosen="positive", rejected="negative"
    )
    assert count_tokens(preference, tokenizer) == (input_tokens, output_tokens)
    prompt_only = Conversation(turns=(Turn("user", "hi"),))
    assert count_tokens(prompt_only, tokenizer)[1] == 0


def test_prompt_token_runs_cut_prompt_ids_after_each_turns_closing_markup(tokenizer):
    conversation = Conversation(
        turns=(Turn("user", "review: dull ->"), Turn("model", "negative"), Turn("user", "fun ->")),
        system="Classify.",
    )
    runs = prompt_token_runs(conversation, tokenizer)

    assert [id_ for run in runs for id_ in run] == prompt_ids(conversation, tokenizer)
    texts = [tokenizer.decode(run) for run in runs]
    assert texts[0].startswith("<|im_start|>system\nClassify.")
    assert texts[0].endswith("dull -><|im_end|>\n")
    assert texts[1] == "<|im_start|>assistant\nnegative<|im_end|>\n"
    assert texts[2].endswith("fun -><|im_end|>\n<|im_start|>assistant\n")


def test_a_turns_text_found_in_the_system_instruction_does_not_move_its_run(tokenizer):
    """ "hi" is inside "Think hard": the runs follow the template, not a text search."""
    conversation = Conversation(
        turns=(Turn("user", "hi"), Turn("model", "ok"), Turn("user", "go")), system="Think hard"
    )
    texts = [tokenizer.decode(run) for run in prompt_token_runs(conversation, tokenizer)]
    assert texts[0].endswith("user\nhi<|im_end|>\n")
    assert texts[1] == "<|im_start|>assistant\nok<|im_end|>\n"


def test_a_conversation_ending_with_the_model_has_no_generation_prompt(tokenizer):
    conversation = Conversation(turns=(Turn("user", "hi"), Turn("model", "ok")))
    runs = prompt_token_runs(conversation, tokenizer)
    assert tokenizer.decode(runs[-1]) == "<|im_start|>assistant\nok<|im_end|>\n"


def test_token_bytes_keep_multibyte_characters_whole_across_tokens(tokenizer):
    ids = tokenizer("é ü 東京", add_special_tokens=False)["input_ids"]
    pieces = token_bytes(tokenizer, ids)
    assert b"".join(pieces) == "é ü 東京".encode()
    assert len(ids) > 4  # the characters are split over several byte-level tokens
    special = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert token_bytes(tokenizer, [special]) == [b"<|im_end|>"]
