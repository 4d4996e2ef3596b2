"""Which line each distinct example was first seen on, without holding the examples.

A dict of examples holds every example of the file; this holds a 64-bit digest and a line number
per distinct example in flat arrays: 18-36 bytes an example (54 for a moment while the table
grows; see ``bytes_per_example``), so duplicate detection streams through a big file.

Two different examples share a digest with probability about n²/2⁶⁵: one in a million for six
million examples. The digest is keyed with random bytes per table, so nobody can craft two
lines that collide on purpose: the worst a collision does is one false duplicate warning.
"""

from __future__ import annotations

import hashlib
import os
from array import array

from tuneforge.data.records import Example

EMPTY = 0  # a digest of 0 is stored as 1 so that 0 can mark a free slot
MAX_LOAD = 2 / 3  # linear probing stays short below this
FIRST_CAPACITY = 1024
MAX_LINE_I = 2**32 - 1  # line numbers past this need 8-byte slots


def example_digest(example: Example, key: bytes) -> int:
    """A keyed 64-bit digest of the example's canonical text (its repr: frozen dataclasses of
    strings, ints and tuples, which repr writes unambiguously)."""
    digest = hashlib.blake2b(repr(example).encode(), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "little") or 1


class FirstLines:
    """An open-addressing hash table from example digests to the first line that held them."""

    def __init__(self, capacity: int = FIRST_CAPACITY) -> None:
        self._key = os.urandom(16)
        self._digests = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def first_line(self, example: Example, line: int) -> int:
        """The first line ``example`` was seen on: ``line`` itself when it is new."""
        digest = example_digest(example, self._key)
        digests, mask = self._digests, self._mask
        slot = digest & mask
        while (held := digests[slot]) != EMPTY:
            if held == digest:
                return self._lines[slot]
            slot = (slot + 1) & mask
        if line > MAX_LINE_I and self._lines.typecode == "I":
            self._lines = array("Q", self._lines)
        digests[slot] = digest
        self._lines[slot] = line
        self._count += 1
        if self._count > MAX_LOAD * len(digests):
            self._grow()
        return line

    def _grow(self) -> None:
        old_digests, old_lines = self._digests, self._lines
        capacity = 2 * len(old_digests)
        digests = array("Q", bytes(8 * capacity))
        lines = array(old_lines.typecode, bytes(old_lines.itemsize * capacity))
        mask = capacity - 1
        for digest, line in zip(old_digests, old_lines, strict=True):
            if digest != EMPTY:
                slot = digest & mask
                while digests[slot] != EMPTY:
                    slot = (slot + 1) & mask
                digests[slot] = digest
                lines[slot] = line
        self._digests, self._lines, self._mask = digests, lines, mask

    @property
    def bytes_per_example(self) -> float:
        """The table's size over the examples it holds (18 to 36 bytes)."""
        size = len(self._digests) * (self._digests.itemsize + self._lines.itemsize)
        return size / max(self._count, 1)
