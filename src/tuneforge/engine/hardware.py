"""Defaults that fit the machine: bf16 and fast attention on a GPU, fp32 on a CPU.

Training attention: flash-attention when installed (it takes a padding-free row's example
boundaries natively), else SDPA run per example (engine/attention.py). Liger's fused kernels
when installed, on a GPU.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from tuneforge import machine
from tuneforge.engine.attention import PACKED_SDPA


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda" or "cpu"
    dtype: torch.dtype
    # Padding-free rows (training) and padded batches (generation, TRL's default collator) need
    # different kernels: the per-example SDPA takes example boundaries but no padding mask.
    packed_attention: str
    padded_attention: str
    liger_kernel: bool = False  # TrainingArguments' use_liger_kernel

    @property
    def bf16(self) -> bool:
        return self.dtype == torch.bfloat16

    def weights_dtype(self, mode: str) -> torch.dtype:
        """What a model in training holds its weights in. Full fine-tuning keeps them in fp32
        under bf16 autocast: AdamW's steps at fine-tuning rates are smaller than bf16's 8-bit
        mantissa can add to a weight, and bf16 weights stop learning (the tiny model's full
        fine-tuning, 80 steps: loss 7.2 to 4.2 in bf16 weights, to 0.75 in fp32 ones under bf16
        autocast, as in fp32 alone). A frozen base under a LoRA adapter (which PEFT keeps in
        fp32) only computes, in the run's dtype."""
        return torch.float32 if mode == "full" else self.dtype


def use_liger_kernel() -> bool:
    """Liger's fused kernels (RMSNorm, RoPE, SwiGLU; TRL keeps its own fused LM head) when the
    package is installed and training runs on CUDA: they are Triton kernels, GPU only."""
    return torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None


def detect_hardware() -> Hardware:
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        flash = importlib.util.find_spec("flash_attn") is not None
        flash = flash and bf16
        return Hardware(
            device="cuda",
            dtype=torch.bfloat16 if bf16 else torch.float32,
            packed_attention="flash_attention_2" if flash else PACKED_SDPA,
            padded_attention="flash_attention_2" if flash else "sdpa",
            liger_kernel=use_liger_kernel(),
        )
    return Hardware(
        device="cpu",
        dtype=torch.float32,
        packed_attention=PACKED_SDPA,
        padded_attention="sdpa",
    )


def available_memory_bytes(device: str) -> int | None:
    """What a training run on ``device`` may plan to use, counting what this process already
    holds (the plan counts the model and the runtime itself): on CUDA, the free memory plus
    what torch has reserved here; on a CPU, the RAM the machine and its container can still
    give (``machine.available_memory_bytes``: MemAvailable, which counts the page cache the
    kernel can drop, within the container's limit less its working set; ``memory_bytes()``
    less what is used would count that cache as taken) plus this process's resident set."""
    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        return free + torch.cuda.memory_reserved()
    available, resident = machine.available_memory_bytes(), machine.resident_bytes()
    if available is None:
        return None
    return available + (resident or 0)
