"""Small media files made in memory for tests: a PNG (pillow), a PDF (pillow's PDF writer) and a
WAV tone (the stdlib's wave module)."""

from __future__ import annotations

import base64
import io
import math
import struct
import wave


def png_bytes(size: tuple[int, int] = (8, 8), colour: str = "red") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def pdf_bytes(pages: int = 1) -> bytes:
    from PIL import Image

    images = [Image.new("RGB", (64, 48), "white") for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def wav_bytes(seconds: float = 0.25, rate: int = 8000, hertz: float = 440.0) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hertz * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def data_url(mime_type: str, data: bytes) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(data).decode()}"
