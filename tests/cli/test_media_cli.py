"""``generate --image/--pdf/--audio``: local files sent as media parts of the user's turn, a
file that cannot be sent refused in one line naming the option and the path, and a model that
cannot read the kind refusing it as the CLI prints any other error."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from tests.media_bytes import pdf_bytes, png_bytes, wav_bytes

TINY = "tuneforge/tiny-chat"
VISION = "tuneforge/tiny-vision"
AUDIO = "tuneforge/tiny-audio"
IMAGE_TOKENS = 64  # tiny-vision's placeholders per image: (64 pixels / 8-pixel patches) ** 2
AUDIO_TOKENS_A_SECOND = 25  # tiny-audio's


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    made = {
        "red.png": png_bytes((32, 32)),
        "page.pdf": pdf_bytes(),
        "tone.wav": wav_bytes(),
        "second.wav": wav_bytes(seconds=1.0, rate=16000),
        "notes.txt": b"just text",
    }
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in made}


def error_line(output: str) -> str:
    """The command's one line of output, which must be an error and nothing else."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    assert lines[0].startswith("error: "), output
    return lines[0].removeprefix("error: ")


def test_an_image_for_a_text_only_model_is_refused_in_one_line(cli, files):
    output = cli("generate", TINY, "what colour?", "--image", str(files["red.png"]), code=1)

    assert error_line(output) == (
        f"--image {files['red.png']}: tuneforge/tiny-chat reads text only; it cannot take images"
    )


@pytest.mark.parametrize(
    ("option", "name", "expected"),
    [
        ("--image", "missing.png", "no such file"),
        ("--pdf", ".", "is a folder, not a file"),
        ("--image", "page.pdf", "the file is application/pdf, not an image; give it with --pdf"),
        ("--audio", "red.png", "the file is image/png, not audio; give it with --image"),
        ("--pdf", "notes.txt", "neither its bytes nor its name say what it is"),
    ],
)
def test_a_file_that_cannot_be_sent_is_named_with_its_option(cli, files, option, name, expected):
    path = files["red.png"].parent / name

    output = cli("generate", TINY, "hello", option, str(path), code=1)

    assert error_line(output).startswith(f"{option} {path}: {expected}")


def test_an_unreadable_file_is_named_with_its_option_and_the_reason(cli, files):
    # A link to itself cannot be read by anyone, root included (a file without read permission
    # can be, and CI runs as root); both are the same OSError to the CLI.
    path = files["tone.wav"].parent / "loop.wav"
    path.symlink_to(path.name)

    output = cli("generate", TINY, "hello", "--audio", str(path), code=1)

    reason = "Too many levels of symbolic links"
    assert error_line(output) == f"--audio {path}: cannot read it: {reason}"


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(cli, files, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_MAX_MEDIA_BYTES", "100")

    output = cli("generate", TINY, "hello", "--pdf", str(files["page.pdf"]), code=1)

    assert error_line(output).startswith(f"--pdf {files['page.pdf']}: the part holds ")
    assert "at most 100 are allowed (TUNEFORGE_MAX_MEDIA_BYTES)" in output


@pytest.fixture(scope="module")
def image_task(tmp_path_factory) -> tuple[Path, Path]:
    from tuneforge.data.media_samples import write_media_task

    return write_media_task(tmp_path_factory.mktemp("image-task"), "image", sizes=(8, 4))


def test_evaluate_refuses_a_media_test_set_for_a_text_only_model_by_example(cli, image_task):
    train, test = image_task

    output = cli("evaluate", TINY, str(test), "--train", str(train), code=1)

    assert error_line(output) == (
        "test example 1: contents[0].parts[0].inlineData: tuneforge/tiny-chat reads text only;"
        " it cannot take images"
    )


def test_evaluate_refuses_audio_longer_than_the_model_hears_by_example(cli, tmp_path):
    nine_seconds = base64.b64encode(wav_bytes(seconds=9.0, rate=16000)).decode()
    line = {
        "contents": [
            {"role": "user", "parts": [
                {"inlineData": {"mimeType": "audio/wav", "data": nine_seconds}},
                {"text": "high or low?"},
            ]},
            {"role": "model", "parts": [{"text": "low"}]},
        ]
    }  # fmt: skip
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps(line) + "\n")

    output = cli("evaluate", AUDIO, str(test), "--few-shot", "0", code=1)

    assert error_line(output) == (
        "test example 1: contents[0].parts[0].inlineData: the audio is 9.0 s long; the model"
        " hears at most 4.0 s of it: cut it into parts that long"
    )


def file_line(image: Path) -> dict:
    """A test example whose image is a file part naming ``image`` by its path."""
    return {
        "contents": [
            {"role": "user", "parts": [
                {"fileData": {"mimeType": "image/png", "fileUri": str(image)}},
                {"text": "What colour?"},
            ]},
            {"role": "model", "parts": [{"text": "red"}]},
        ]
    }  # fmt: skip


def test_evaluate_reads_file_parts_by_the_projects_rules(cli, files, tmp_path):
    """A fileData part is read as a request's would be: a path outside the dataset roots is
    refused, naming the test example and the part."""
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps(file_line(files["red.png"])) + "\n")

    output = cli("evaluate", TINY, str(test), "--few-shot", "0", code=1)

    assert error_line(output) == (
        f"test example 1: contents[0].parts[0].fileData: '{files['red.png']}' is not an uploaded"
        " file and not under a dataset root (TUNEFORGE_DATASET_ROOTS); upload it with"
        " POST /v1/files"
    )


def prompt_tokens(output: str) -> int:
    found = re.search(r"(\d+) prompt tokens, \d+ output tokens", output)
    assert found, output
    return int(found[1])


@pytest.mark.parametrize(
    ("model", "option", "name", "placeholders"),
    [
        (VISION, "--image", "red.png", IMAGE_TOKENS),
        (VISION, "--pdf", "page.pdf", IMAGE_TOKENS),  # one page, rendered as one image
        (AUDIO, "--audio", "second.wav", AUDIO_TOKENS_A_SECOND + 2),  # and its start and end
    ],
)
def test_generate_with_a_file_answers_having_read_it(cli, files, model, option, name, placeholders):
    with_file = cli("generate", model, "which?", option, str(files[name]), "--max-tokens", "4")
    text_only = cli("generate", model, "which?", "--max-tokens", "4")

    answer = with_file.strip().splitlines()[0]
    assert answer.strip() and "error" not in answer  # the untuned base: any text
    assert prompt_tokens(with_file) == prompt_tokens(text_only) + placeholders


def test_evaluate_on_tiny_vision_puts_the_few_shot_examples_images_in_the_prompt(cli, image_task):
    train, test = image_task

    report = json.loads(cli("evaluate", VISION, str(test), "--train", str(train), "-k", "2",
                            "--json", stdout_only=True))  # fmt: skip

    zero, two = report["candidates"]
    assert (zero["label"], two["label"], report["examples"]) == ("base", "base 2-shot", 4)
    # each shot adds its image's placeholders besides its text
    assert two["mean_prompt_tokens"] > zero["mean_prompt_tokens"] + 2 * IMAGE_TOKENS


def test_evaluate_reads_a_file_part_under_the_dataset_roots(cli, files, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_DATASET_ROOTS", json.dumps([str(tmp_path)]))
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps(file_line(files["red.png"])) + "\n")

    report = json.loads(cli("evaluate", VISION, str(test), "-k", "0", "--json", stdout_only=True))

    [base] = report["candidates"]
    assert base["examples"] == 1 and base["mean_prompt_tokens"] > IMAGE_TOKENS


def test_evaluate_says_when_the_few_shot_examples_media_outgrow_the_context(cli, image_task):
    train, test = image_task

    output = cli("evaluate", VISION, str(test), "--train", str(train), "-k", "8", code=1)

    message = error_line(output)
    assert re.fullmatch(
        r"base 8-shot: the prompt has \d+ tokens; the model reads at most 512\. Every few-shot"
        r" prompt holds its 8 examples' media, and they do not fit the model's context: evaluate"
        r" with fewer few-shot examples, or none",
        message,
    ), message
