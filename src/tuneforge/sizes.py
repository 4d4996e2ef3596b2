"""Byte counts as people read them, the same on every surface."""

from __future__ import annotations

GIB = 1 << 30


def byte_size(count: int) -> str:
    """Binary multiples, as memory and disk tools print them: "512 B", "12 KiB", "382 MiB",
    "2.31 GiB" (a GiB with two decimals: the plans and limits that use it differ in tenths)."""
    if count >= GIB:
        return f"{count / GIB:.2f} GiB"
    if count >= 1 << 20:
        return f"{count / (1 << 20):.0f} MiB"
    if count >= 1 << 10:
        return f"{count / 1024:.0f} KiB"
    return f"{count} B"
