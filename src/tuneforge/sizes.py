"""Byte counts as people read them, the same on every surface."""

from __future__ import annotations


def byte_size(count: int) -> str:
    """1536 -> "1.5 KB"; binary multiples, as disk tools print them."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
