"""Defaults that fit the machine: bf16 and fast attention on a GPU, fp32 on a CPU.

Training attention: flash-attention when installed (it takes a padding-free row's example
boundaries natively), else SDPA run per example (engine/attention.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from tuneforge.engine.attention import PACKED_SDPA


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda" or "cpu"
    dtype: torch.dtype
    # Padding-free rows (training) and padded batches (generation, TRL's default collator) need
    # different kernels: the per-example SDPA takes example boundaries but no padding mask.
    packed_attention: str
    padded_attention: str
    free_memory_bytes: int | None

    @property
    def bf16(self) -> bool:
        return self.dtype == torch.bfloat16


def detect_hardware() -> Hardware:
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        flash = importlib.util.find_spec("flash_attn") is not None
        free, _total = torch.cuda.mem_get_info()
        flash = flash and bf16
        return Hardware(
            device="cuda",
            dtype=torch.bfloat16 if bf16 else torch.float32,
            packed_attention="flash_attention_2" if flash else PACKED_SDPA,
            padded_attention="flash_attention_2" if flash else "sdpa",
            free_memory_bytes=free,
        )
    return Hardware(
        device="cpu",
        dtype=torch.float32,
        packed_attention=PACKED_SDPA,
        padded_attention="sdpa",
        free_memory_bytes=None,
    )


def needs_gradient_checkpointing(
    hardware: Hardware,
    parameters: int,
    hidden_size: int,
    layers: int,
    tokens_per_step: int,
    full_weights: bool,
) -> bool:
    """A rough estimate: turn on recomputation when weights + optimizer + activations would fill
    more than 80% of the free GPU memory. Never on a CPU (memory is plentiful, time is not)."""
    if hardware.free_memory_bytes is None:
        return False
    bytes_per_value = 2 if hardware.bf16 else 4
    weights = parameters * bytes_per_value
    optimizer = parameters * 12 if full_weights else 0  # fp32 master copy + Adam moments
    activations = tokens_per_step * hidden_size * layers * 34 * bytes_per_value // 2
    return weights + optimizer + activations > 0.8 * hardware.free_memory_bytes
