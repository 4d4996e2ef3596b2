"""Torch's intra-op threads for a test. The suite's two workers share two cores: with two threads
each, a tiny model's decoding step spins ~40x longer waiting for the other thread than it
computes, and its training runs about half as fast."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread inside the block, torch's count before it restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
