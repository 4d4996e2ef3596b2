"""The generated media tasks, for the tests, the benchmarks and the demo: no download, fully
deterministic for a seed.

Each task asks the same question of every example, so only the media can tell the answer:
- ``image``: the colour of a shape (a circle or a square, anywhere, any size) drawn on a grey
  background (PNG);
- ``document``: the figure (a circle, a square or a triangle, near the middle, of varying
  size) printed on a one-page PDF (saved with pillow's PDF writer);
- ``audio``: whether a tone is high or low (a sine of random pitch, phase and loudness in
  noise, one second of 16 kHz WAV).
The tiny tokenizer writes the colours in one token each, the other answers in a few.
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tuneforge.data.media import MediaKind

COLOURS = {"red": (210, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 210)}
FIGURES = ("circle", "square", "triangle")
PITCHES = {"low": (180.0, 400.0), "high": (1500.0, 3200.0)}  # Hz ranges
QUESTIONS: dict[MediaKind, str] = {
    "image": "What colour is the shape?",
    "document": "Which figure is printed on the page?",
    "audio": "Is the tone high or low?",
}
MIME_TYPES: dict[MediaKind, str] = {
    "image": "image/png",
    "document": "application/pdf",
    "audio": "audio/wav",
}
AUDIO_RATE = 16_000


@dataclass(frozen=True)
class MediaExample:
    kind: MediaKind
    data: bytes
    answer: str

    @property
    def question(self) -> str:
        return QUESTIONS[self.kind]

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.kind]


def colour_image(rng: random.Random, colour: str, size: int = 64) -> bytes:
    from PIL import Image, ImageDraw

    shade = rng.randint(150, 235)
    image = Image.new("RGB", (size, size), (shade, shade, shade))
    draw = ImageDraw.Draw(image)
    extent = rng.randint(size // 3, size * 3 // 4)
    left, top = rng.randint(0, size - extent), rng.randint(0, size - extent)
    fill = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in COLOURS[colour])
    box = (left, top, left + extent, top + extent)
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return _encoded(image, "PNG")


def figure_pdf(rng: random.Random, figure: str) -> bytes:
    from PIL import Image, ImageDraw

    # A square page: vision processors crop to a square, which must not cut the figure off.
    page = Image.new("RGB", (160, 160), "white")
    draw = ImageDraw.Draw(page)
    # Near the middle: the tiny model's random vision tower does not find a figure anywhere
    # on the page (at random places held-out exact match stayed near 0.6).
    extent = rng.randint(84, 100)
    left = (160 - extent) // 2 + rng.randint(-6, 6)
    top = (160 - extent) // 2 + rng.randint(-6, 6)
    box = (left, top, left + extent, top + extent)
    if figure == "circle":
        draw.ellipse(box, fill="black")
    elif figure == "square":
        draw.rectangle(box, fill="black")
    else:
        draw.polygon([(left, top + extent), (left + extent // 2, top), box[2:]], fill="black")
    return _encoded(page, "PDF")


def tone_wav(rng: random.Random, pitch: str, seconds: float = 1.0) -> bytes:
    import numpy as np
    import soundfile

    low, high = PITCHES[pitch]
    frequency = math.exp(rng.uniform(math.log(low), math.log(high)))
    times = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 0.02, times.shape)
    wave = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * frequency * times + rng.uniform(0, 6.3))
    buffer = io.BytesIO()
    soundfile.write(buffer, (wave + noise).astype(np.float32), AUDIO_RATE, "PCM_16", format="WAV")
    return buffer.getvalue()


def _encoded(image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def media_example(kind: MediaKind, rng: random.Random) -> MediaExample:
    if kind == "image":
        answer = rng.choice(sorted(COLOURS))
        return MediaExample(kind, colour_image(rng, answer), answer)
    if kind == "document":
        answer = rng.choice(FIGURES)
        return MediaExample(kind, figure_pdf(rng, answer), answer)
    answer = rng.choice(sorted(PITCHES))
    return MediaExample(kind, tone_wav(rng, answer), answer)


def media_examples(kind: MediaKind, count: int, seed: int = 0) -> list[MediaExample]:
    rng = random.Random(f"{kind}-{seed}")
    return [media_example(kind, rng) for _ in range(count)]


def to_vertex(example: MediaExample) -> dict:
    """A Vertex supervised line: the media inline, then the question."""
    data = base64.b64encode(example.data).decode()
    media = {"inlineData": {"mimeType": example.mime_type, "data": data}}
    return {
        "contents": [
            {"role": "user", "parts": [media, {"text": example.question}]},
            {"role": "model", "parts": [{"text": example.answer}]},
        ]
    }


def to_openai(example: MediaExample) -> dict:
    """An OpenAI chat line: an image as a data URL, audio as ``input_audio``, a PDF as a
    ``file`` part."""
    data = base64.b64encode(example.data).decode()
    if example.kind == "image":
        part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
    elif example.kind == "audio":
        part = {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
    else:
        url = f"data:application/pdf;base64,{data}"
        part = {"type": "file", "file": {"file_data": url, "filename": "page.pdf"}}
    return {
        "messages": [
            {"role": "user", "content": [part, {"type": "text", "text": example.question}]},
            {"role": "assistant", "content": example.answer},
        ]
    }


def write_media_task(
    folder: Path,
    kind: MediaKind,
    sizes: tuple[int, int] = (200, 100),
    seed: int = 0,
    dataset_format: Literal["vertex", "openai"] = "vertex",
) -> tuple[Path, Path]:
    """A training and a held-out JSONL file of the task; the held-out examples are drawn apart
    from the training ones."""
    convert = to_vertex if dataset_format == "vertex" else to_openai
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, count, split_seed in (("train", sizes[0], seed), ("test", sizes[1], seed + 10_000)):
        path = folder / f"{kind}_{name}.jsonl"
        lines = (json.dumps(convert(e)) for e in media_examples(kind, count, split_seed))
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths[0], paths[1]
