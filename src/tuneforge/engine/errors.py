"""Failures of a tuning run, each saying what to change."""

from __future__ import annotations

from tuneforge.errors import TuneforgeError


class TuningError(TuneforgeError):
    """A run that cannot start or cannot go on. ``code`` is machine-readable."""

    def __init__(self, message: str, code: str = "tuning_failed") -> None:
        super().__init__(message)
        self.code = code


def out_of_memory_message(batch_size: int, max_seq_length: int, mode: str) -> str:
    hints = [
        f"a smaller batch size (now {batch_size})",
        f"a shorter max sequence length (now {max_seq_length})",
    ]
    if mode == "full":
        hints.append("mode 'peft' (a LoRA adapter needs far less memory than all weights)")
    return "out of memory while training; try " + ", or ".join(hints)
