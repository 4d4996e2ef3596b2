"""Loss masks of media examples: only the model's turns train, never a media placeholder."""

from __future__ import annotations

import random

import pytest

from tuneforge.data.media import MediaLimits
from tuneforge.data.media_samples import MediaExample, colour_image, to_vertex, tone_wav
from tuneforge.data.media_tokenize import MediaEncoder, decode_media, sampling_rate
from tuneforge.data.records import Conversation, Turn
from tuneforge.data.tokenize import IGNORE_INDEX
from tuneforge.data.validate import validate_dataset
from tuneforge.models.loading import load_processor
from tuneforge.models.resolve import resolve_base_model
from tuneforge.models.tiny_media import AUDIO_TOKEN, IMAGE_TOKEN


def conversation_of(example: MediaExample) -> Conversation:
    import json

    report = validate_dataset(json.dumps(to_vertex(example)).encode(), min_examples=1)
    return report.examples[0]


@pytest.mark.parametrize(
    ("model", "example", "placeholder"),
    [
        (
            "tuneforge/tiny-vision",
            MediaExample("image", colour_image(random.Random(0), "red"), "red"),
            IMAGE_TOKEN,
        ),
        (
            "tuneforge/tiny-audio",
            MediaExample("audio", tone_wav(random.Random(0), "low"), "low"),
            AUDIO_TOKEN,
        ),
    ],
)
def test_only_the_model_turn_trains_and_no_placeholder_does(settings, model, example, placeholder):
    processor = load_processor(resolve_base_model(model, settings).source)
    tokenizer = processor.tokenizer
    base = conversation_of(example)
    # Two rounds, the second with its own media: both answers train, nothing else does.
    conversation = Conversation(
        turns=(*base.turns, Turn("user", "again?", media=base.media), Turn("model", "sure"))
    )
    decoded = decode_media(conversation, lambda m: m.data, MediaLimits(), sampling_rate(processor))
    encoding = MediaEncoder(processor).encode(conversation, decoded)
    placeholder_id = tokenizer.convert_tokens_to_ids(placeholder)
    positions = [i for i, t in enumerate(encoding.input_ids) if t == placeholder_id]
    assert len(positions) > 2  # expanded: a run of placeholders per media part
    assert all(encoding.labels[i] == IGNORE_INDEX for i in positions)
    trained = [t for t in encoding.labels if t != IGNORE_INDEX]
    expected = tokenizer(f"{example.answer}<|im_end|>\nsure<|im_end|>\n", add_special_tokens=False)[
        "input_ids"
    ]
    assert tokenizer.decode(trained) == tokenizer.decode(expected)
    assert encoding.media_inputs  # the tower's inputs, one item per media part
    first = next(iter(encoding.media_inputs.values()))
    assert first.shape[0] == 2


def test_statistics_count_the_media_and_the_tokens_they_cost(settings):
    import json

    from tuneforge.data.media_samples import media_examples
    from tuneforge.data.stats import compute_stats
    from tuneforge.jobs.media_files import media_rules

    lines = "\n".join(json.dumps(to_vertex(e)) for e in media_examples("image", 3))
    rules = media_rules(settings, "tuneforge/tiny-vision", read=None)
    processor = load_processor(resolve_base_model("tuneforge/tiny-vision", settings).source)
    report = validate_dataset(
        lines.encode(), tokenizer=processor.tokenizer, max_length=512, min_examples=1,
        media=rules,
    )  # fmt: skip
    assert report.media_counts == {"image": 3}
    assert report.media_tokens == 3 * 64  # each 64x64 image fills 64 placeholders
    stats = compute_stats(
        report.examples, processor.tokenizer, token_counts=report.token_counts,
        media_tokens=report.media_tokens,
    )  # fmt: skip
    assert stats.media == {"image": 3}
    assert stats.media_tokens == 192
    # The input tokens hold the expanded placeholders, not one token per image.
    assert stats.input_tokens.min > 64


def test_a_local_check_counts_a_part_named_by_file_as_the_text_tokenizer_sees_it(settings):
    """Without a reader (``datasets validate``, ``tune``'s check before uploading) a file part
    cannot be decoded here: the line is valid, counted without expanding that part, and the
    job reads and counts it where it runs."""
    import json

    from tuneforge.jobs.media_files import media_rules

    line = {
        "contents": [
            {"role": "user", "parts": [
                {"fileData": {"mimeType": "image/png", "fileUri": "file-abc"}},
                {"text": "What colour?"},
            ]},
            {"role": "model", "parts": [{"text": "red"}]},
        ]
    }  # fmt: skip
    processor = load_processor(resolve_base_model("tuneforge/tiny-vision", settings).source)
    report = validate_dataset(
        json.dumps(line).encode(), tokenizer=processor.tokenizer, max_length=512,
        min_examples=1, media=media_rules(settings, "tuneforge/tiny-vision", read=None),
    )  # fmt: skip

    assert report.ok, report.problems
    assert report.media_counts == {"image": 1}
    assert report.media_tokens == 0  # not counted here
    [(input_tokens, output_tokens)] = report.token_counts
    assert input_tokens < 64 and output_tokens > 0
