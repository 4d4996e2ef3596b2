"""The model page's "Try it" box takes a file: it goes to the models as an inline media part of
the user's turn, checked as any media part is, shown in the conversation by its name and type,
and carried on in the form (small files only). A model that cannot read it refuses it as the
page's error."""

from __future__ import annotations

import base64
import html
import re

from tests.api.conftest import Api
from tests.api.test_ui import page, post_form, sign_in
from tests.media_bytes import png_bytes, wav_bytes

TINY = "tuneforge/tiny-chat"
PATH = f"/ui/models/{TINY}"
FORM = {"max_tokens": "4", "temperature": "0", "top_p": "1"}
PNG = png_bytes((16, 16), "blue")
IMAGE_TOKENS = 64  # tiny-vision's placeholders per image


def prompt_tokens(body: str) -> int:
    [count] = re.findall(r"(\d+) prompt tokens? ·", body)
    return int(count)


def error_of(body: str) -> str:
    found = re.search(r'<p class="alert alert-error">(.*?)</p>', body, re.S)
    assert found, body
    return html.unescape(found[1])


def hidden(body: str, name: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf'name="{name}" value="([^"]*)"', body)]


def send(api: Api, prompt: str, file: tuple[str, bytes, str] | None, path: str = PATH, **extra):
    files = {"media": file} if file else {"media": ("", b"", "application/octet-stream")}
    return post_form(
        api, path, token_from=path, data={**FORM, "prompt": prompt, **extra}, files=files
    )


def test_the_form_takes_a_file_of_the_media_kinds(api: Api):
    sign_in(api)

    body = page(api, PATH)

    assert 'enctype="multipart/form-data"' in body
    assert (
        '<input id="media" name="media" type="file" accept="image/png,image/jpeg,image/webp,'
        'image/gif,application/pdf,audio/wav,audio/mpeg,audio/flac">'
    ) in body


def test_a_png_for_a_text_only_model_is_the_pages_error_and_the_conversation_stays(api: Api):
    sign_in(api)
    kept = {"history_user": ["before"], "history_base": ["reply"]}

    response = send(api, "what colour?", ("blue.png", PNG, "image/png"), **kept)

    assert response.status_code == 400
    assert error_of(response.text) == (
        "file blue.png: tuneforge/tiny-chat reads text only; it cannot take images"
    )
    assert hidden(response.text, "history_base") == ["reply"]  # the turn was not added
    assert "what colour?</textarea>" in response.text


def test_an_empty_file_input_sends_text_alone(api: Api):
    sign_in(api)

    response = send(api, "hello", None)

    assert response.status_code == 200, response.text
    assert len(hidden(response.text, "history_base")) == 1
    assert hidden(response.text, "history_media") == [""]
    assert "attached:" not in response.text


def test_a_broken_file_is_refused_by_its_name_before_any_model_runs(api: Api):
    sign_in(api)

    truncated = send(api, "what colour?", ("half.png", PNG[: len(PNG) // 2], "image/png"))
    unknown = send(api, "what?", ("notes.txt", b"plain words", "text/plain"))

    assert truncated.status_code == 400
    assert error_of(truncated.text).startswith("file half.png: the image cannot be decoded")
    assert unknown.status_code == 400
    assert error_of(unknown.text).startswith("file notes.txt: not a file of a known type")


def test_files_past_what_the_form_carries_are_refused_with_a_pointer_to_the_api(api: Api):
    sign_in(api)
    big = PNG + b"\0" * (2 * 1024 * 1024)

    response = send(api, "what colour?", ("big.png", big, "image/png"))

    assert response.status_code == 400
    message = error_of(response.text)
    assert message.startswith("the conversation's files would be 2.0 MiB; this page carries at")
    assert "send larger ones through the API" in message


def test_a_carried_file_that_was_tampered_with_is_refused(api: Api):
    sign_in(api)
    carried = {
        "history_user": ["before"], "history_base": ["reply"],
        "history_media": ["data:image/png;base64,@@@"], "history_media_name": ["x.png"],
    }  # fmt: skip

    response = send(api, "again", None, **carried)

    assert response.status_code == 400
    assert "the file 'x.png' in the form's conversation cannot be read back" in error_of(
        response.text
    )


def test_a_carried_file_reaches_the_model_with_its_turn(api: Api):
    """A text-only model refuses the earlier turn's file: it is sent, not dropped."""
    sign_in(api)
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    carried = {
        "history_user": ["what colour?"], "history_base": ["blue"],
        "history_media": [url], "history_media_name": ["blue.png"],
    }  # fmt: skip

    response = send(api, "are you sure?", None, **carried)

    assert response.status_code == 400
    assert error_of(response.text) == (
        "file blue.png: tuneforge/tiny-chat reads text only; it cannot take images"
    )
    assert 'attached: <span class="mono">blue.png</span> · image/png' in response.text


def test_a_png_on_tiny_vision_is_answered_and_carried_into_the_next_turn(api: Api):
    path = "/ui/models/tuneforge/tiny-vision"
    sign_in(api)

    first = send(api, "what colour?", ("blue.png", PNG, "image/png"), path=path)

    assert first.status_code == 200, first.text
    [answer] = hidden(first.text, "history_base")
    assert answer.strip()  # the untuned base: any text
    assert 'attached: <span class="mono">blue.png</span> · image/png' in first.text
    assert hidden(first.text, "history_media_name") == ["blue.png"]
    [carried] = hidden(first.text, "history_media")
    assert base64.b64decode(carried.removeprefix("data:image/png;base64,")) == PNG

    history = {
        "history_user": ["what colour?"], "history_base": [answer],
        "history_media": [carried], "history_media_name": ["blue.png"],
    }  # fmt: skip
    second = send(api, "sure?", None, path=path, **history)

    assert second.status_code == 200, second.text
    assert hidden(second.text, "history_media_name") == ["blue.png", ""]
    without = send(api, "sure?", None, path=path, **{**history, "history_media": [""]})
    # the first turn's image came along: its placeholders are in the prompt
    assert prompt_tokens(second.text) == prompt_tokens(without.text) + IMAGE_TOKENS


def test_audio_longer_than_the_model_hears_is_the_pages_error(api: Api):
    sign_in(api)
    nine_seconds = wav_bytes(seconds=9.0, rate=16000)  # tiny-audio hears 4 s

    response = send(
        api, "high or low?", ("tone.wav", nine_seconds, "audio/wav"),
        path="/ui/models/tuneforge/tiny-audio",
    )  # fmt: skip

    assert response.status_code == 400
    assert error_of(response.text) == (
        "file tone.wav: the audio is 9.0 s long; the model hears at most 4.0 s of it:"
        " cut it into parts that long"
    )
    assert "high or low?</textarea>" in response.text
