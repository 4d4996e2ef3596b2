"""Fixtures for the dataset-layer tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The built-in tiny model's tokenizer (a byte-level BPE with a ChatML-style template)."""
    from tuneforge.models.tiny import build_tokenizer

    return build_tokenizer()
