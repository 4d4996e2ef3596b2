"""Media parts in datasets: read from both services' formats, decoded, and every bad part
named by its line and field."""

from __future__ import annotations

import base64
import io
import json
import random

import numpy as np
import pytest
import soundfile
from PIL import Image

from tuneforge.data.media import (
    MediaError,
    MediaLimits,
    decode_audio,
    decode_image,
    render_pdf,
    sniffed_type,
)
from tuneforge.data.media_check import MediaCheck
from tuneforge.data.media_samples import (
    MediaExample,
    colour_image,
    figure_pdf,
    to_openai,
    to_vertex,
    tone_wav,
)
from tuneforge.data.tokenize import chat_messages
from tuneforge.data.validate import validate_dataset

RNG = random.Random(0)
PNG = colour_image(RNG, "red")
PDF = figure_pdf(RNG, "circle")
WAV = tone_wav(RNG, "high")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def vertex_line(*parts: dict, answer: str = "red") -> dict:
    return {
        "contents": [
            {"role": "user", "parts": [*parts, {"text": "What colour?"}]},
            {"role": "model", "parts": [{"text": answer}]},
        ]
    }


def inline(mime: str, data: bytes) -> dict:
    return {"inlineData": {"mimeType": mime, "data": b64(data)}}


def validate(lines: list[dict], **options):
    data = "\n".join(json.dumps(line) for line in lines).encode()
    return validate_dataset(data, min_examples=1, recommended_examples=1, **options)


def errors(report) -> list[tuple[int, str, str]]:
    return [(p.line, p.field, p.message) for p in report.problems if p.severity == "error"]


def wav_bytes(seconds: float, rate: int = 8000, channels: int = 1, subtype="PCM_16") -> bytes:
    buffer = io.BytesIO()
    samples = np.zeros((int(seconds * rate), channels), dtype=np.int16)
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def pdf_with_pages(count: int) -> bytes:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    for _ in range(count):
        document.new_page(200, 100)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_each_format_reads_its_media_parts_in_order_before_the_text():
    examples = [
        MediaExample(kind, data, "x")
        for kind, data in (("image", PNG), ("document", PDF), ("audio", WAV))
    ]
    for convert in (to_vertex, to_openai):
        report = validate([convert(e) for e in examples])
        assert report.ok, report.problems
        assert report.media_counts == {"image": 1, "document": 1, "audio": 1}
        kinds = [c.turns[0].media[0].kind for c in report.examples]
        assert kinds == ["image", "document", "audio"]
        assert report.examples[0].turns[0].media[0].data == PNG
        assert report.examples[0].turns[0].text == examples[0].question
    file_part = {"fileData": {"mimeType": "application/pdf", "fileUri": "file-abc"}}
    [conversation] = validate([vertex_line(file_part)]).examples
    [media] = conversation.media
    assert (media.kind, media.uri, media.path) == (
        "document",
        "file-abc",
        "contents[0].parts[0].fileData",
    )


def test_the_template_sees_one_placeholder_per_image_page_and_audio_then_the_text():
    line = vertex_line(
        inline("image/png", PNG), inline("application/pdf", PDF), inline("audio/wav", WAV)
    )
    [conversation] = validate([line]).examples
    messages = chat_messages(conversation, pages={1: 3})
    assert messages[0]["content"] == [
        {"type": "image"},
        {"type": "image"},
        {"type": "image"},
        {"type": "image"},
        {"type": "audio"},
        {"type": "text", "text": "What colour?"},
    ]
    assert messages[1] == {"role": "assistant", "content": "red"}


def truncated_png() -> bytes:
    return PNG[: len(PNG) // 2]


BAD_PARTS = {
    "truncated png": (inline("image/png", truncated_png()), "the image cannot be decoded"),
    "not base64": ({"inlineData": {"mimeType": "image/png", "data": "%%%"}}, "not valid base64"),
    "unsupported type": (inline("image/tiff", PNG), "unsupported MIME type 'image/tiff'"),
    "pdf declared as png": (inline("image/png", PDF), "declared image/png, but the bytes are"),
    "empty pdf": (inline("application/pdf", pdf_with_pages(0)), "the PDF has no pages"),
    "pdf over the page limit": (
        inline("application/pdf", pdf_with_pages(5)),
        "the PDF has 5 pages; at most 4",
    ),
    "two hours of audio": (
        inline("audio/wav", wav_bytes(2 * 3600, rate=1000, subtype="PCM_U8")),  # 7.2 MB
        "the audio is 2 h 00 min long; at most 10 min 00 s is allowed",
    ),
    "audio that is not audio": (inline("audio/wav", b"RIFF0000WAVEjunk"), "not WAV, MP3 or FLAC"),
}


@pytest.mark.parametrize(("part", "phrase"), BAD_PARTS.values(), ids=BAD_PARTS.keys())
def test_a_bad_part_is_named_by_line_and_field_and_the_others_are_kept(part, phrase):
    good = vertex_line(inline("image/png", PNG))
    report = validate([good, vertex_line(part), good], media=MediaCheck(MediaLimits(pdf_pages=4)))
    [(line, field, message)] = errors(report)
    assert (line, field) == (
        2,
        "contents[0].parts[0].inlineData"
        + (".data" if "base64" in phrase else ".mimeType" if "MIME" in phrase else ""),
    ), message
    assert phrase in message
    assert report.example_count == 2


def test_ten_thousand_images_in_one_example_are_refused_at_the_first_one_over():
    tiny = b64(colour_image(random.Random(1), "blue", size=4))
    parts = [{"inlineData": {"mimeType": "image/png", "data": tiny}}] * 10_000
    report = validate([vertex_line(*parts)])
    [(line, field, message)] = errors(report)
    assert (line, field) == (1, "contents[0].parts[64].inlineData")
    assert "at most 64 media parts; this one has 10,000" in message


def test_a_text_only_base_refuses_media_naming_the_part():
    check = MediaCheck(accepts=frozenset(), model="tuneforge/tiny-chat")
    report = validate([to_openai(MediaExample("image", PNG, "red"))], media=check)
    [(line, field, message)] = errors(report)
    assert (line, field) == (1, "messages[0].content[0].image_url.url")
    assert message == "tuneforge/tiny-chat reads text only; it cannot take images"
    vision = MediaCheck(accepts=frozenset({"image", "document"}), model="tuneforge/tiny-vision")
    report = validate([to_vertex(MediaExample("audio", WAV, "high"))], media=vision)
    assert errors(report)[0][2] == (
        "tuneforge/tiny-vision reads text, images and PDF documents; it cannot take audio"
    )


def test_a_file_part_is_read_through_the_checks_reader_and_its_errors_named():
    def read(media):
        if media.uri == "file-missing":
            raise MediaError("no file 'file-missing' in this project")
        return PNG

    ok = {"fileData": {"mimeType": "image/png", "fileUri": "file-ok"}}
    missing = {"fileData": {"mimeType": "image/png", "fileUri": "file-missing"}}
    report = validate([vertex_line(ok), vertex_line(missing)], media=MediaCheck(read=read))
    assert errors(report) == [
        (2, "contents[0].parts[0].fileData", "no file 'file-missing' in this project")
    ]


def test_media_in_a_model_turn_or_a_preference_prompt_is_refused():
    line = {
        "contents": [
            {"role": "user", "parts": [{"text": "q"}]},
            {"role": "model", "parts": [inline("image/png", PNG)]},
        ]
    }
    [(_, field, message)] = errors(validate([line]))
    assert (field, message) == (
        "contents[1].parts[0].inlineData",
        'media parts belong in "user" turns',
    )
    preference = {
        "input": {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(PNG)}}]}]},
        "preferred_output": [{"role": "assistant", "content": "red"}],
        "non_preferred_output": [{"role": "assistant", "content": "blue"}],
    }  # fmt: skip
    assert validate([preference], task="preference").ok  # DPO reads images
    reward = MediaCheck(method="the reward method", method_reads=frozenset())
    [(_, field, message)] = errors(validate([preference], task="preference", media=reward))
    assert field == "input.messages[0].content[0].image_url.url"
    assert message == "the reward method reads text only; it cannot take images"


def test_openai_parts_name_their_mistakes():
    def content(*parts):
        return {
            "messages": [
                {"role": "user", "content": list(parts)},
                {"role": "assistant", "content": "a"},
            ]
        }

    cases = [
        (
            {"type": "image_url", "image_url": {"url": "data:application/pdf;base64," + b64(PDF)}},
            "messages[0].content[0].image_url.url",
            "an image_url part takes an image",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "ogg"}},
            "messages[0].content[0].input_audio.format",
            "unsupported audio format ogg",
        ),
        (
            {"type": "input_audio", "input_audio": {"format": "wav"}},
            "messages[0].content[0].input_audio.data",
            'missing "data"',
        ),
        ({"type": "video_url"}, "messages[0].content[0].type", "unknown part type video_url"),
    ]
    for part, field, phrase in cases:
        [(_, found_field, message)] = errors(validate([content(part)]))
        assert (found_field, phrase in message) == (field, True), message


def test_decoders_give_rgb_first_frames_pages_and_resampled_mono_audio():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    gif = decode_image(buffer.getvalue(), MediaLimits())
    assert gif.mode == "RGB" and gif.getpixel((0, 0))[0] > 200  # the first, red frame
    webp = io.BytesIO()
    frames[1].save(webp, "WEBP")
    assert decode_image(webp.getvalue(), MediaLimits()).getpixel((0, 0))[2] > 200
    [page] = render_pdf(PDF, MediaLimits())
    assert page.mode == "RGB" and max(page.size) <= 1024
    stereo = wav_bytes(0.5, rate=8000, channels=2)
    audio = decode_audio(stereo, 16_000, MediaLimits())
    assert audio.dtype == np.float32 and audio.shape == (8000,)
    with pytest.raises(MediaError, match=r"the model hears at most 0\.2 s"):
        decode_audio(stereo, 16_000, MediaLimits(), max_seconds=0.2)
    with pytest.raises(MediaError, match="pixels"):
        decode_image(PNG, MediaLimits(image_pixels=100))


@pytest.mark.parametrize(("audio_format", "mime"), [("MP3", "audio/mpeg"), ("FLAC", "audio/flac")])
def test_mp3_and_flac_decode_to_the_models_rate(audio_format, mime):
    buffer = io.BytesIO()
    tone = np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050).astype(np.float32)
    soundfile.write(buffer, tone, 22050, format=audio_format)
    data = buffer.getvalue()
    assert sniffed_type(data) == mime
    audio = decode_audio(data, 16_000, MediaLimits())
    assert abs(len(audio) - 16_000) < 1_200  # one second (MP3 frames pad its ends)
    assert 0.5 < float(np.abs(audio).max()) < 1.1
    report = validate([vertex_line(inline(mime, data))])
    assert report.ok and report.media_counts == {"audio": 1}
